// The web client's side of identity and moderation (docs/PROTOCOL.md v1.1),
// in Chromium against the real Worker and room: a dev server that verifies
// host JWTs signed with a known key, pages signed in with real JWTs (minted as
// `npm run token` mints them), and moderators whose frames the real room
// carries out while other pages watch.
//
// A few situations the real room cannot be brought into from here are still
// played by a proxy in the test (FrameProxy), each saying why: a refused
// delete (the page only offers delete where the room allows it) and presence
// counts (the room sends no `presence` frame yet). The framed page's room is
// played by the test too (e2e/embed-auth.test.ts frames the real one), and a
// read-only guest has a file of its own (e2e/guests-read.test.ts), whose
// server has GUESTS=read.

import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { BrowserContext, WebSocketRoute } from "playwright-core";
import { describe, expect, test } from "vitest";
import { mintToken } from "../scripts/mint.ts";
import { verifiedUserId } from "../src/auth.ts";
import { type ChatPage, eventually } from "./support/chat.ts";
import { newRoom, useHarness } from "./support/harness.ts";

const SECRET = "e2e-moderation-jwt-secret-of-at-least-32-bytes";
const h = useHarness({ AUTH_JWT_SECRET: SECRET });

/** A host JWT for `sub`, as `npm run token` mints it. */
function jwt(sub: string, name: string, roles: string[] = []): Promise<string> {
  return mintToken(SECRET, { sub, name, roles, rooms: [], minutes: 60 });
}

/** Someone signed in by the host: `#room&auth=JWT`, no name to ask. */
async function signedIn(room: string, sub: string, name: string, roles: string[] = []): Promise<ChatPage> {
  return h.person(room, name, { auth: await jwt(sub, name, roles) });
}

type Frame = Record<string, unknown> & { type: string };

/**
 * Routes a context's socket through the test, for what the real room cannot
 * be brought to send here (see the top): `inject` sends the page a frame of
 * the test's own, and the delete frames the page sends are kept in `sent`
 * instead of reaching the room.
 */
class FrameProxy {
  readonly sent: Frame[] = [];
  #page: WebSocketRoute | null = null;

  install = async (context: BrowserContext) => {
    await context.routeWebSocket(/\/chat\//, (page) => {
      const server = page.connectToServer();
      this.#page = page;
      page.onMessage((msg) => {
        const text = String(msg);
        if (text !== "ping") {
          const frame = JSON.parse(text) as Frame;
          if (frame.type === "delete") {
            this.sent.push(frame);
            return;
          }
        }
        server.send(msg);
      });
      server.onMessage((msg) => page.send(msg));
    });
  };

  inject(frame: Frame) {
    if (this.#page === null) throw new Error("no socket to inject into");
    this.#page.send(JSON.stringify(frame));
  }

  async sentFrame(type: string): Promise<Frame> {
    await eventually(`the page never sent a ${type} frame`, async () => this.sent.some((f) => f.type === type), {
      state: async () => `sent: ${JSON.stringify(this.sent)}`,
    });
    return this.sent.find((f) => f.type === type)!;
  }
}

async function withProxy(room: string, name: string) {
  const proxy = new FrameProxy();
  const chat = await h.person(room, name, { setup: proxy.install });
  return { proxy, chat };
}

async function idOf(p: ChatPage, text: string): Promise<number> {
  await p.waitForMessage(text);
  const m = (await p.messages()).find((l) => l.text === text);
  return m!.id!;
}

async function userId(p: ChatPage): Promise<string> {
  return (await p.page.locator("#online .person.own").getAttribute("data-id")) ?? "";
}

function textOf(p: ChatPage, id: number) {
  return p.page.locator(`#log .msg[data-id="${id}"] .text`).innerText();
}

describe("links, names and badges", () => {
  test("links in a message are clickable, open apart with noopener noreferrer nofollow; nothing else is markup", async () => {
    const room = newRoom();
    const alice = await h.person(room, "Alice");
    const bob = await h.person(room, "Bob");
    const text = "docs (https://example.com/a_(b)?q=1&r=<2>), javascript:alert(1) and <b>bold</b> https://example.org.";
    await alice.send(text);
    await bob.waitForMessage(text);

    const p = bob.page.locator("#log .msg:last-child .text");
    expect(await p.evaluate((el) => el.textContent)).toBe(text);
    const links = await p.evaluate((el) =>
      Array.from(el.children, (c) => ({
        tag: c.tagName,
        href: c.getAttribute("href"),
        text: c.textContent,
        rel: c.getAttribute("rel"),
        target: c.getAttribute("target"),
      })),
    );
    expect(links).toEqual([
      {
        tag: "A",
        href: "https://example.com/a_(b)?q=1&r=",
        text: "https://example.com/a_(b)?q=1&r=",
        rel: "noopener noreferrer nofollow",
        target: "_blank",
      },
      {
        tag: "A",
        href: "https://example.org/",
        text: "https://example.org",
        rel: "noopener noreferrer nofollow",
        target: "_blank",
      },
    ]);
  });

  test("two people with one name are told apart: a short id in the list and on hover", async () => {
    const room = newRoom();
    const sam1 = await h.person(room, "Sam");
    const sam2 = await h.person(room, "sam");
    const carol = await h.person(room, "Carol");
    await carol.waitForOnline(["Sam", "sam", "Carol"]);
    const ids = [await userId(sam1), await userId(sam2)];
    const shown = await carol.page
      .locator("#online .person")
      .evaluateAll((items) =>
        items.map((li) => [li.querySelector(".name")?.textContent, li.querySelector(".short-id")?.textContent ?? null]),
      );
    expect(shown).toEqual(
      expect.arrayContaining([
        ["Sam", `#${ids[0]!.slice(-4)}`],
        ["sam", `#${ids[1]!.slice(-4)}`],
        ["Carol", null],
      ]),
    );
    expect(ids[0]!.slice(-4)).not.toBe(ids[1]!.slice(-4));

    await sam1.send("which Sam am I");
    await carol.waitForMessage("which Sam am I");
    expect(await carol.page.locator("#log .msg:last-child .author").getAttribute("title")).toBe(
      `Sam · id …${ids[0]!.slice(-4)}`,
    );
    expect(await carol.page.locator("#log .msg:last-child .short-id").textContent()).toBe(`#${ids[0]!.slice(-4)}`);
  });

  test("a user the host signed in (a real JWT) carries a verified badge in the list and next to their messages; a guest none", async () => {
    const room = newRoom();
    const carol = await h.person(room, "Carol");
    const bob = await signedIn(room, "bob", "Bob");
    const bobId = await verifiedUserId("bob");
    expect(await userId(bob)).toBe(bobId);
    expect(await bob.page.locator("#me").textContent()).toBe("Bob");
    expect(await bob.page.locator("#online .person.own .badge").getAttribute("aria-label")).toBe("verified");

    await carol.waitForOnline(["Bob", "Carol"]);
    await bob.send("signed in");
    await carol.waitForMessage("signed in");
    expect(await carol.page.locator(`#online .person[data-id="${bobId}"] .badge`).getAttribute("aria-label")).toBe(
      "verified",
    );
    expect(await carol.page.locator("#log .msg:last-child .badge").count()).toBe(1);
    expect(await carol.page.locator("#online .person.own .badge").count()).toBe(0);

    // From the welcome's list and history too, not only from live frames.
    await carol.reload();
    await carol.waitForMessage("signed in");
    expect(await carol.page.locator(`#online .person[data-id="${bobId}"] .badge`).getAttribute("aria-label")).toBe(
      "verified",
    );
    expect(await carol.page.locator("#log .msg:last-child .badge").count()).toBe(1);
  });
});

describe("a moderator at work", () => {
  test("delete and ban: the watcher sees 'message deleted' live and after a reload; the banned page says why and for how long, stops, and is refused after a reload", async () => {
    const room = newRoom();
    const bob = await signedIn(room, "bob", "Bob");
    const bobId = await verifiedUserId("bob");
    const carol = await signedIn(room, "carol", "Carol");
    for (const t of ["first", "spam spam", "last"]) {
      await bob.send(t);
      await carol.waitForMessage(t);
    }
    const mod = await signedIn(room, "alice", "Alice", ["moderator"]);
    await mod.waitForMessage("last");
    const id = await idOf(mod, "spam spam");
    expect(await carol.page.locator("#log button[data-action=delete]").count()).toBe(0);
    expect(await carol.page.locator("#mod-tools").isHidden()).toBe(true);
    expect(await mod.page.locator("#mod-tools").isVisible()).toBe(true);

    const del = mod.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`);
    expect(await del.getAttribute("aria-label")).toBe("Delete message");
    await del.click();
    expect(await del.getAttribute("aria-label")).toBe("Confirm: delete this message");
    await del.click();
    await eventually(
      "Carol never saw the message deleted",
      async () => (await textOf(carol, id)) === "message deleted",
      {
        state: () => carol.describe(),
      },
    );
    expect((await carol.messages()).map((m) => m.text)).toEqual(["first", "message deleted", "last"]);
    expect(await carol.page.locator(`#log .msg[data-id="${id}"] .author`).textContent()).toBe("Bob");
    await eventually(
      "the moderator never saw the message deleted",
      async () => (await textOf(mod, id)) === "message deleted",
    );

    // Ban, from the people list, for a day and with a reason.
    const sockets: string[] = [];
    bob.page.on("websocket", (ws) => sockets.push(ws.url()));
    await mod.waitForOnline(["Alice", "Bob", "Carol"]);
    const ban = mod.page.locator(`#online .person[data-id="${bobId}"] button[data-action=ban]`);
    expect(await ban.getAttribute("aria-label")).toBe("Ban Bob");
    expect(await mod.page.locator("#online .person.own button[data-action=ban]").count()).toBe(0);
    await ban.click();
    await mod.page.locator("#ban-minutes").selectOption("1440");
    await mod.page.locator("#ban-reason").fill("  spamming links ");
    await mod.page.locator("#ban-dialog button[value=ban]").click();

    await eventually("Bob's page never showed the ban", async () => await bob.page.locator("#banned").isVisible(), {
      state: async () => `status: ${await bob.status()}`,
    });
    const banned =
      /^You are banned from #t-[0-9a-f-]+ for about 24 more hours \(until .+\)\. Reason: “spamming links”$/;
    expect(await bob.page.locator("#banned-text").textContent()).toMatch(banned);
    expect(await bob.status()).toBe("stopped");
    expect(await bob.page.locator("#status-text").textContent()).toBe("Banned");
    expect(await bob.page.locator("#message").isDisabled()).toBe(true);
    await carol.waitForOnline(["Alice", "Carol"]);

    // The tombstone is the room's: a reload gets it from history.
    await carol.reload();
    await carol.waitForMessage("last");
    expect((await carol.messages()).map((m) => m.text)).toEqual(["first", "message deleted", "last"]);
    // Meanwhile Bob's page, stopped, opened no socket.
    expect(sockets).toEqual([]);

    // The room refuses the upgrade (403, which a page cannot read): the page tries once and still knows why.
    await bob.page.reload();
    await eventually(
      "after a reload Bob's page never showed the ban",
      async () => await bob.page.locator("#banned").isVisible(),
      {
        state: async () => `status: ${await bob.status()}; sockets: ${sockets.length}`,
      },
    );
    expect(sockets).toHaveLength(1);
    expect(await bob.status()).toBe("stopped");
    expect(await bob.page.locator("#banned-text").textContent()).toMatch(banned);
    await mod.waitForOnline(["Alice", "Carol"]);

    // Lifted over the HTTP API with the moderator's JWT: "Try again" gets back in, and the notice goes.
    const lifted = await fetch(`${h.server.url}/api/rooms/${room}/bans/${bobId}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${await jwt("alice", "Alice", ["moderator"])}` },
    });
    expect(lifted.status).toBe(204);
    await bob.page.locator("#banned-retry").click();
    await bob.waitOnline();
    expect(await bob.page.locator("#banned").isHidden()).toBe(true);
    expect(await bob.page.locator("#message").isDisabled()).toBe(false);
    await carol.waitForOnline(["Alice", "Bob", "Carol"]);
  });

  test("a ban is remembered per user: another user welcomed in a tab of the same browser does not clear it", async () => {
    const room = newRoom();
    const bob = await signedIn(room, "bob", "Bob");
    const banned = await fetch(`${h.server.url}/api/rooms/${room}/bans/${await verifiedUserId("bob")}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${await jwt("alice", "Alice", ["moderator"])}` },
      body: JSON.stringify({ minutes: 60, reason: "spam" }),
    });
    expect(banned.status).toBe(204);
    await eventually("Bob's page never showed the ban", async () => await bob.page.locator("#banned").isVisible());
    // Dave signs in beside Bob: another tab, the same localStorage.
    const dave = await bob.context.newPage();
    await dave.goto(`${h.server.url}/#${room}&auth=${await jwt("dave", "Dave")}`);
    await eventually(
      "Dave's tab never got online",
      async () => (await dave.locator("#status").getAttribute("data-state")) === "online",
    );
    await bob.page.reload();
    await eventually(
      "after Dave's welcome, Bob's reload no longer knew of the ban",
      async () => await bob.page.locator("#banned").isVisible(),
    );
    expect(await bob.page.locator("#banned-text").textContent()).toMatch(/Reason: “spam”$/);
  });

  test("everyone may delete their own message (two clicks), and only their own", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const alice = await h.person(room, "Alice");
    await bob.send("from bob");
    await alice.waitForMessage("from bob");
    await alice.send("my own");
    const id = await idOf(alice, "my own");
    await bob.waitForMessage("my own");

    expect(await alice.page.locator("#log .msg button[data-action=delete]").count()).toBe(1);
    const button = alice.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`);
    await button.click();
    expect(await button.getAttribute("aria-label")).toBe("Confirm: delete this message");
    expect(await textOf(bob, id)).toBe("my own");
    await button.click();
    await eventually(
      "Bob never saw Alice's message deleted",
      async () => (await textOf(bob, id)) === "message deleted",
    );
    await eventually(
      "Alice never saw her message deleted",
      async () => (await textOf(alice, id)) === "message deleted",
    );
    expect((await bob.messages()).map((m) => m.text)).toEqual(["from bob", "message deleted"]);
  });

  test("a refused delete is said so, and the button works again", async () => {
    // Faked: the page only offers delete where the room allows it, so the
    // real room refuses one only when the page is out of date (a role taken
    // away mid-session), which a test cannot bring about.
    const room = newRoom();
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    await alice.send("my own");
    const id = await idOf(alice, "my own");
    const button = alice.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`);
    await button.click();
    expect(proxy.sent).toEqual([]);
    await button.click();
    const frame = await proxy.sentFrame("delete");
    expect(frame).toEqual({ type: "delete", id, nonce: expect.any(String) });
    expect(await button.isDisabled()).toBe(true);

    proxy.inject({
      type: "error",
      code: "forbidden",
      message: "only its author or a moderator may delete a message",
      nonce: frame.nonce,
    });
    await eventually(
      "the refusal was never shown",
      async () => (await alice.page.locator("#notice").textContent()) === "Could not delete the message: not allowed.",
    );
    expect(await button.isDisabled()).toBe(false);
    expect(await textOf(alice, id)).toBe("my own");
  });
});

describe("slow mode", () => {
  test("slow mode a moderator sets counts down on another user's send button instead of an error after the fact; turned off, it comes back", async () => {
    const room = newRoom();
    const bob = await signedIn(room, "bob", "Bob");
    const mod = await signedIn(room, "alice", "Alice", ["moderator"]);
    await mod.page.locator("#slow-mode").selectOption("300");
    await bob.waitForSystem(/^Slow mode is on: one message every 5 minutes$/);
    expect(await bob.page.locator("#slow-hint").textContent()).toBe("Slow mode: one message every 5 minutes");
    expect(await bob.page.locator("#send").isDisabled()).toBe(false);

    await bob.send("one");
    await mod.waitForMessage("one");
    await eventually(
      "Bob's send button never showed the wait",
      async () => await bob.page.locator("#send").isDisabled(),
    );
    const secs = Number(await bob.page.locator("#send-wait").textContent());
    expect(secs).toBeGreaterThan(0);
    expect(secs).toBeLessThanOrEqual(300);
    expect(await bob.page.locator("#send").getAttribute("aria-label")).toMatch(
      /^Slow mode: you can send again in \d+ seconds$/,
    );
    // Enter during the countdown keeps the text; nothing is sent or queued.
    await bob.send("two");
    expect(await bob.page.locator("#message").inputValue()).toBe("two");
    expect(await bob.page.locator("#pending > *").count()).toBe(0);

    // Moderators are not slowed down.
    await mod.send("mod one");
    await mod.send("mod two");
    await bob.waitForMessage("mod two");

    await mod.page.locator("#slow-mode").selectOption("0");
    await bob.waitForSystem(/^Slow mode is off$/);
    await eventually("Bob's send button never came back", async () => !(await bob.page.locator("#send").isDisabled()));
    await bob.page.locator("#message").press("Enter");
    await mod.waitForMessage("two");
    expect((await mod.messages()).map((m) => m.text)).toEqual(["one", "mod one", "mod two", "two"]);
  });
});

describe("large rooms", () => {
  test("presence counts: 'N online' and a partial list, then the whole list again", async () => {
    // Faked: the room does not send `presence` frames yet (large rooms are another change's).
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    await alice.waitForOnline(["Alice", "Bob"]);
    proxy.inject({ type: "presence", count: 12_345 });
    await eventually(
      "the count never showed",
      async () => (await alice.page.locator("#online-count").textContent()) === "12,345",
    );
    expect(await alice.page.locator("#people-count").textContent()).toBe("12,345");
    expect(await alice.page.locator("#online-partial").textContent()).toBe("Showing 2 of 12,345");
    expect(await alice.page.locator("#online-partial").isVisible()).toBe(true);

    const online = [
      { id: await userId(bob), name: "Bob" },
      { id: await userId(alice), name: "Alice" },
    ];
    proxy.inject({ type: "presence", count: 2, online });
    await eventually(
      "the count never came back to 2",
      async () => (await alice.page.locator("#online-count").textContent()) === "2",
    );
    expect(await alice.page.locator("#online-partial").isHidden()).toBe(true);
    await alice.waitForOnline(["Alice", "Bob"]);
  });
});

describe("embedding", () => {
  test("a JWT in the fragment goes on the upgrade as `auth` and leaves the address bar; the room verifies it, and a reload keeps it", async () => {
    const room = newRoom();
    const token = await jwt("alice", "Alice");
    const context = await h.browser.newContext();
    try {
      const page = await context.newPage();
      const sockets: string[] = [];
      page.on("websocket", (ws) => sockets.push(ws.url()));
      const online = () =>
        eventually(
          "the page never went online",
          async () => (await page.locator("#status").getAttribute("data-state")) === "online",
          {
            state: async () => `status: ${await page.locator("#status").innerText()}`,
          },
        );
      await page.goto(`${h.server.url}/#${room}&auth=${token}`);
      await online();
      // Signed in by the host: no name to ask, and the room says who.
      expect(await page.locator("#name-dialog").evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);
      expect(await page.locator("#me").getAttribute("aria-label")).toBe("Signed in as Alice");
      expect(await page.locator("#online .person.own").getAttribute("data-id")).toBe(await verifiedUserId("alice"));
      expect(new URL(page.url()).hash).toBe(`#${room}`);
      expect(await page.locator("#room-name").textContent()).toBe(room);
      expect(sockets.map((u) => new URL(u).searchParams.get("auth"))).toEqual([token]);
      // A reload of the tab keeps it (sessionStorage), still out of the URL.
      await page.reload();
      await online();
      expect(sockets.map((u) => new URL(u).searchParams.get("auth"))).toEqual([token, token]);
      expect(new URL(page.url()).hash).toBe(`#${room}`);
      expect(await page.locator("#me").getAttribute("aria-label")).toBe("Signed in as Alice");
    } finally {
      await context.close();
    }
  });

  test("in an iframe of an allowed origin: the JWT comes by postMessage, and a new one is asked for after a failed connect", async () => {
    const room = newRoom();
    const listen = async (server: Server) => {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    // Two more origins on 127.0.0.1 (Chromium's local network rules block a
    // public origin, or a document the test fulfils, from reaching loopback):
    // the chat page with the frame-ancestors and meta the Worker serves when
    // ALLOWED_ORIGINS names the host (src/page.ts; e2e/embed-auth.test.ts
    // runs that with a real JWT), and the host page, which answers every
    // need-auth with a new JWT, numbered.
    let host = "";
    const chatServer = createServer((req, res) => {
      void (async () => {
        const upstream = await fetch(`${h.server.url}${req.url ?? "/"}`);
        const type = upstream.headers.get("content-type") ?? "";
        let body = Buffer.from(await upstream.arrayBuffer());
        if (type.startsWith("text/html")) {
          body = Buffer.from(
            body
              .toString("utf8")
              .replace(
                'name="edge-chat-allowed-origins" content=""',
                `name="edge-chat-allowed-origins" content="${host}"`,
              ),
          );
        }
        const csp = (upstream.headers.get("content-security-policy") ?? "").replace(
          "frame-ancestors 'none'",
          `frame-ancestors ${host}`,
        );
        res.writeHead(upstream.status, { "content-type": type, "content-security-policy": csp });
        res.end(body);
      })();
    });
    const chatOrigin = await listen(chatServer);
    const hostServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><iframe id="chat" src="${chatOrigin}/?room=${room}" width="600" height="500"></iframe>
<script>
  const b64 = (v) => btoa(JSON.stringify(v)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  window.asked = 0;
  addEventListener("message", (ev) => {
    if (ev.origin !== ${JSON.stringify(chatOrigin)} || ev.data?.type !== "edge-chat:need-auth") return;
    window.asked++;
    const jwt = b64({ alg: "HS256" }) + "." + b64({ sub: "alice", exp: 4000000000, n: window.asked }) + ".c2ln";
    document.getElementById("chat").contentWindow.postMessage({ type: "edge-chat:auth", jwt }, ${JSON.stringify(chatOrigin)});
  });
</script>`);
    });
    host = await listen(hostServer);

    // The room is played by the test: the first connect fails as a refused
    // JWT does (a page cannot read the 401), the next one is welcomed as the
    // v1.1 room welcomes a verified user.
    const urls: string[] = [];
    const context = await h.browser.newContext();
    try {
      await context.routeWebSocket(/\/chat\//, (ws) => {
        urls.push(ws.url());
        if (urls.length === 1) {
          void ws.close({ code: 1011, reason: "" });
          return;
        }
        ws.onMessage(() => {});
        ws.send(
          JSON.stringify({
            type: "welcome",
            room,
            you: { id: "v_alice", name: "Alice", verified: true, roles: [] },
            token: "t",
            online: [{ id: "v_alice", name: "Alice", verified: true }],
            history: [],
            gap: false,
            limits: { history: 100, text: 2000, name: 32, burst: 10, perSec: 5 },
            onlineCount: 1,
          }),
        );
      });
      const page = await context.newPage();
      await page.goto(`${host}/`);
      const frame = page.frameLocator("#chat");
      await eventually(
        "the framed page never went online",
        async () => (await frame.locator("#status").getAttribute("data-state")) === "online",
        {
          state: async () =>
            `frames: ${page
              .frames()
              .map((f) => f.url())
              .join(", ")}\nurls: ${urls.join("\n")}`,
        },
      );
      const n = (url: string) => {
        const jwt = new URL(url).searchParams.get("auth") ?? "";
        return (JSON.parse(atob(jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))) as { n: number }).n;
      };
      // Each connect asked the host first and went with the JWT it got back.
      expect(urls.map(n)).toEqual([1, 2]);
      expect(await page.evaluate(() => (window as unknown as { asked: number }).asked)).toBe(2);
      // Signed in by the host: no name to ask, a badge, the name not editable here.
      expect(await frame.locator("#name-dialog").evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);
      expect(await frame.locator("#online .person.own .badge").count()).toBe(1);
      expect(await frame.locator("#me").getAttribute("aria-label")).toBe("Signed in as Alice");
      // The host's name for this user is not kept as this browser's guest name.
      const chat = page.frames().find((f) => f.url().startsWith(chatOrigin));
      expect(await chat?.evaluate(() => localStorage.getItem("edge-chat:name"))).toBeNull();
    } finally {
      await context.close();
      await Promise.all([chatServer, hostServer].map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });
});
