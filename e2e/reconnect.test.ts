// The client's delivery guarantees when the connection breaks: the server
// crashing and coming back with its storage, a message whose echo was lost,
// a message lost on the way, and a gap longer than the room keeps.
//
// Lost frames are made with Playwright's WebSocket routing: the page's
// socket goes through a proxy in the test, which can drop one frame and cut
// the connection at exactly the moment that matters.

import type { BrowserContext, WebSocketRoute } from "playwright-core";
import { describe, expect, test } from "vitest";
import { type ChatPage, eventually } from "./support/chat.ts";
import { newRoom, sendRaw, useHarness } from "./support/harness.ts";

const h = useHarness();

function person(room: string, name: string, setup?: (context: BrowserContext) => Promise<void>) {
  return h.person(room, name, setup ? { setup } : {});
}

async function countIn(p: ChatPage, text: string): Promise<number> {
  return (await p.messages()).filter((m) => m.text === text).length;
}

/** The room's stored history, straight from the HTTP API. */
async function stored(room: string): Promise<string[]> {
  const res = await fetch(`${h.server.url}/api/rooms/${room}/messages`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { messages: { text: string }[] };
  return body.messages.map((m) => m.text);
}

/** Every page of the context throws on `localStorage` and `sessionStorage`, as with cookies blocked. */
async function blockStorage(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    for (const name of ["localStorage", "sessionStorage"]) {
      Object.defineProperty(window, name, {
        configurable: true,
        get() {
          throw new DOMException("The operation is insecure.", "SecurityError");
        },
      });
    }
  });
}

/**
 * Routes every socket of a context through the test. `cut` arms a trap: the
 * next frame (in the given direction) whose text contains `marker` is dropped
 * and the connection is cut, as if the network failed at that instant.
 */
class SocketProxy {
  #current: { page: WebSocketRoute; server: WebSocketRoute | null } | null = null;
  #trap: { direction: "up" | "down"; marker: string; sprung: boolean } | null = null;
  /** While blocked, new connections are refused. */
  blocked = false;
  connections = 0;

  install = async (context: BrowserContext) => {
    await context.routeWebSocket(/\/chat\//, (page) => {
      this.connections++;
      if (this.blocked) {
        // Not 4003: that is "banned", after which the page stops retrying.
        void page.close({ code: 1013, reason: "blocked by test" });
        return;
      }
      const server = page.connectToServer();
      this.#current = { page, server };
      page.onMessage((msg) => {
        if (this.#springs("up", msg)) return;
        server.send(msg);
      });
      server.onMessage((msg) => {
        if (this.#springs("down", msg)) return;
        page.send(msg);
      });
    });
  };

  #springs(direction: "up" | "down", msg: string | Buffer): boolean {
    const trap = this.#trap;
    if (trap === null || trap.sprung || trap.direction !== direction || !String(msg).includes(trap.marker))
      return false;
    trap.sprung = true;
    this.cut();
    return true;
  }

  /** Drops the next frame containing `marker` going `up` (to the server) or `down` (to the page), then cuts. */
  arm(direction: "up" | "down", marker: string) {
    this.#trap = { direction, marker, sprung: false };
  }

  get sprung() {
    return this.#trap?.sprung === true;
  }

  cut() {
    const c = this.#current;
    this.#current = null;
    if (c === null) return;
    void c.page.close({ code: 4002, reason: "cut by test" });
    void c.server?.close();
  }
}

describe("delivery across broken connections", () => {
  test("the server is killed and restarts: reconnecting, then online; nothing lost or doubled", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice");
    const bob = await person(room, "Bob");
    await alice.send("before the crash");
    await bob.waitForMessage("before the crash");

    await h.server.stop("SIGKILL");
    await eventually(
      "Alice's page never showed 'reconnecting' after the server died",
      async () => (await alice.status()) === "reconnecting",
      {
        state: async () => `status: ${await alice.page.locator("#status").innerText()}`,
      },
    );
    expect(await alice.page.locator("#status").innerText()).toMatch(/Reconnecting in \d+ s/);

    // Typed while the server is down: shown as pending, sent once it is back.
    await alice.send("typed while offline");
    await eventually("the offline message was never shown as pending", async () =>
      (await alice.page.locator("#pending .text").allTextContents()).includes("typed while offline"),
    );

    await h.server.restart();
    await alice.waitOnline(60_000);
    await bob.waitOnline(60_000);

    await bob.send("after the restart");
    for (const p of [alice, bob]) {
      await p.waitForMessage("after the restart", 30_000);
      await p.waitForMessage("typed while offline", 30_000);
    }
    // Alice's outbox sends in order, one at a time: once this arrives, any
    // second copy of what she sent before it would already be on screen.
    await alice.send("barrier");
    for (const p of [alice, bob]) await p.waitForMessage("barrier", 30_000);
    for (const p of [alice, bob]) {
      for (const text of ["before the crash", "typed while offline", "after the restart"]) {
        expect(await countIn(p, text), `${p.name} shows ${JSON.stringify(text)} once\n${await p.describe()}`).toBe(1);
      }
    }
    expect(await alice.page.locator("#pending > *").count()).toBe(0);
    expect((await stored(room)).filter((t) => t === "typed while offline")).toHaveLength(1);
    // Still marked as Alice's own after the reconnect.
    const mine = (await alice.messages()).find((m) => m.text === "typed while offline");
    expect(mine?.own).toBe(true);
  });

  test("a message stored but whose echo was lost is not sent again", async () => {
    const room = newRoom();
    const proxy = new SocketProxy();
    const alice = await person(room, "Alice", proxy.install);
    const bob = await person(room, "Bob");

    proxy.arm("down", "echo gets lost");
    await alice.send("echo gets lost");
    await eventually("the proxy never saw the echo to drop", async () => proxy.sprung);
    await alice.waitOnline(30_000);
    await alice.waitForMessage("echo gets lost");
    await bob.waitForMessage("echo gets lost");
    await alice.send("next one");
    await bob.waitForMessage("next one");

    expect(await countIn(alice, "echo gets lost")).toBe(1);
    expect(await countIn(bob, "echo gets lost")).toBe(1);
    expect(
      (await stored(room)).filter((t) => t === "echo gets lost"),
      "stored twice: the client resent a stored message",
    ).toHaveLength(1);
    expect(await alice.page.locator("#pending > *").count()).toBe(0);
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
  });

  test("with browser storage blocked, a message whose echo was lost is still stored once", async () => {
    const room = newRoom();
    const proxy = new SocketProxy();
    const alice = await person(room, "Alice", async (context) => {
      await blockStorage(context);
      await proxy.install(context);
    });
    expect(
      await alice.page.evaluate(() => {
        try {
          localStorage.getItem("x");
          return "storage works";
        } catch {
          return "blocked";
        }
      }),
    ).toBe("blocked");
    const bob = await person(room, "Bob");
    await alice.send("first, to learn who I am");
    await alice.waitForMessage("first, to learn who I am");

    proxy.arm("down", "echo lost, storage blocked");
    await alice.send("echo lost, storage blocked");
    await eventually("the proxy never saw the echo to drop", async () => proxy.sprung);
    await alice.waitOnline(30_000);
    await alice.waitForMessage("echo lost, storage blocked");
    await alice.send("after it");
    await bob.waitForMessage("after it");
    await alice.waitForMessage("after it");

    expect(
      (await stored(room)).filter((t) => t === "echo lost, storage blocked"),
      "stored twice: the client resent a stored message",
    ).toHaveLength(1);
    expect(await countIn(bob, "echo lost, storage blocked")).toBe(1);
    expect(await alice.page.locator("#pending > *").count()).toBe(0);
    // The same user across the reconnect: Bob sees one Alice, and all three are Alice's own.
    await bob.waitForOnline(["Alice", "Bob"]);
    expect((await alice.messages()).map((m) => [m.text, m.own])).toEqual([
      ["first, to learn who I am", true],
      ["echo lost, storage blocked", true],
      ["after it", true],
    ]);
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
  });

  test("a message lost on the way to the server is sent again after the reconnect", async () => {
    const room = newRoom();
    const proxy = new SocketProxy();
    const alice = await person(room, "Alice", proxy.install);
    const bob = await person(room, "Bob");

    proxy.arm("up", "lost on the way");
    await alice.send("lost on the way");
    await eventually("the proxy never saw the message to drop", async () => proxy.sprung);
    await alice.waitForMessage("lost on the way", 30_000);
    await bob.waitForMessage("lost on the way");

    expect(await countIn(alice, "lost on the way")).toBe(1);
    expect(await countIn(bob, "lost on the way")).toBe(1);
    expect((await stored(room)).filter((t) => t === "lost on the way")).toHaveLength(1);
    expect(await alice.page.locator("#pending > *").count()).toBe(0);
  });

  test("away longer than the history keeps: a gap notice, then the kept messages once each", async () => {
    const room = newRoom();
    const proxy = new SocketProxy();
    const alice = await person(room, "Alice", proxy.install);
    await alice.send("before leaving");
    await alice.waitForMessage("before leaving");

    proxy.blocked = true;
    proxy.cut();
    await eventually("Alice's page never noticed the cut", async () => (await alice.status()) !== "online");

    // 110 messages, in bursts the rate limits allow: 10 per user, and one
    // address (all of this test's clients) refills 15 a second.
    const texts = Array.from({ length: 110 }, (_, i) => `bulk ${i + 1}`);
    for (let i = 0; i < texts.length; i += 10) {
      await sendRaw(h.server.url, room, texts.slice(i, i + 10));
      await new Promise((resolve) => setTimeout(resolve, 700));
    }

    proxy.blocked = false;
    // "Retry now" skips the backoff's wait, but the page may get there first
    // on its own (the button then never shows again), and the countdown
    // beside it moves it every second: click while it is there, until online.
    await eventually(
      "Alice's page never came back online",
      async () => {
        if ((await alice.status()) === "online") return true;
        await alice.page
          .locator("#retry")
          .click({ timeout: 1000 })
          .catch(() => {});
        return false;
      },
      { timeout: 60_000 },
    );
    await alice.waitForSystem(/missed/);
    await alice.waitForMessage("bulk 110");

    const messages = await alice.messages();
    const ids = messages.map((m) => m.id);
    expect(new Set(ids).size, "a message id shown twice").toBe(ids.length);
    expect(ids).toEqual([...ids].sort((a, b) => (a ?? 0) - (b ?? 0)));
    // The room keeps 100: bulk 11..110 came back, plus what was already on screen.
    expect(messages.map((m) => m.text)).toEqual(["before leaving", ...texts.slice(10)]);
  });
});
