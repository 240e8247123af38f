// The web client's side of identity, moderation and large rooms (docs/PROTOCOL.md
// v1.1), in Chromium. What today's Worker already does is tested against it
// (links, two people with one name, the JWT in the fragment). What only the
// v1.1 room sends (delete and settings frames, tombstones, `verified`,
// moderator roles, 4003, presence counts) is injected into the page's real
// socket by a proxy in the test, exactly as the contract spells the frames,
// and what the page sends back is checked frame by frame. Once the room
// sends these itself, the same assertions hold with two real pages.

import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { BrowserContext, WebSocketRoute } from "playwright-core";
import { describe, expect, test } from "vitest";
import { type ChatPage, eventually } from "./support/chat.ts";
import { newRoom, useHarness } from "./support/harness.ts";

const h = useHarness();

type Frame = Record<string, unknown> & { type: string };

/**
 * Routes a context's sockets through the test: `rewrite` may change each
 * frame on its way to the page (inside batches too), `inject` sends the page
 * a frame of the test's own, and the moderation frames the page sends are
 * kept in `sent` instead of reaching a room that does not know them yet.
 */
class FrameProxy {
  readonly urls: string[] = [];
  readonly sent: Frame[] = [];
  rewrite: (f: Frame) => Frame = (f) => f;
  /** While set, new connections are closed before their welcome, as a refused upgrade looks to a page. */
  refuse = false;
  /** While set, `message` frames are kept in `sent` too. */
  holdMessages = false;
  #page: WebSocketRoute | null = null;

  install = async (context: BrowserContext) => {
    await context.routeWebSocket(/\/chat\//, (page) => {
      this.urls.push(page.url());
      if (this.refuse) {
        void page.close({ code: 1011, reason: "" });
        return;
      }
      const server = page.connectToServer();
      this.#page = page;
      page.onMessage((msg) => {
        const text = String(msg);
        if (text !== "ping") {
          const frame = JSON.parse(text) as Frame;
          if (["delete", "ban", "unban", "settings"].includes(frame.type) || (this.holdMessages && frame.type === "message")) {
            this.sent.push(frame);
            return;
          }
        }
        server.send(msg);
      });
      server.onMessage((msg) => {
        const text = String(msg);
        if (text === "pong") return page.send(msg);
        const frame = this.#rewrite(JSON.parse(text) as Frame);
        page.send(JSON.stringify(frame));
      });
    });
  };

  #rewrite(frame: Frame): Frame {
    if (frame.type === "batch") return { ...frame, frames: (frame.frames as Frame[]).map((f) => this.rewrite(f)) };
    return this.rewrite(frame);
  }

  inject(frame: Frame) {
    if (this.#page === null) throw new Error("no socket to inject into");
    this.#page.send(JSON.stringify(frame));
  }

  close(code: number, reason: string) {
    void this.#page?.close({ code, reason });
    this.#page = null;
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
      Array.from(el.children, (c) => ({ tag: c.tagName, href: c.getAttribute("href"), text: c.textContent, rel: c.getAttribute("rel"), target: c.getAttribute("target") })),
    );
    expect(links).toEqual([
      { tag: "A", href: "https://example.com/a_(b)?q=1&r=", text: "https://example.com/a_(b)?q=1&r=", rel: "noopener noreferrer nofollow", target: "_blank" },
      { tag: "A", href: "https://example.org/", text: "https://example.org", rel: "noopener noreferrer nofollow", target: "_blank" },
    ]);
  });

  test("two people with one name are told apart: a short id in the list and on hover", async () => {
    const room = newRoom();
    const sam1 = await h.person(room, "Sam");
    const sam2 = await h.person(room, "sam");
    const carol = await h.person(room, "Carol");
    await carol.waitForOnline(["Sam", "sam", "Carol"]);
    const ids = [await userId(sam1), await userId(sam2)];
    const shown = await carol.page.locator("#online .person").evaluateAll((items) =>
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
    expect(await carol.page.locator("#log .msg:last-child .author").getAttribute("title")).toBe(`Sam · id …${ids[0]!.slice(-4)}`);
    expect(await carol.page.locator("#log .msg:last-child .short-id").textContent()).toBe(`#${ids[0]!.slice(-4)}`);
  });

  test("a verified user carries a badge in the list and next to their messages", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const bobId = await userId(bob);
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    // What a v1.1 room sends for a user who came with the host's JWT.
    const verify = (u: unknown) => ((u as { id?: string }).id === bobId ? { ...(u as object), verified: true } : u);
    proxy.rewrite = (f) => {
      if (f.type === "welcome") return { ...f, online: (f.online as unknown[]).map(verify) };
      if (f.type === "message") return { ...f, from: verify(f.from) };
      return f;
    };
    await alice.reload();
    await bob.send("signed in");
    await alice.waitForMessage("signed in");
    expect(await alice.page.locator(`#online .person[data-id="${bobId}"] .badge`).getAttribute("aria-label")).toBe("verified");
    expect(await alice.page.locator("#log .msg:last-child .badge").count()).toBe(1);
    expect(await alice.page.locator("#online .person.own .badge").count()).toBe(0);
  });
});

describe("delete and tombstones", () => {
  test("a delete frame shows 'message deleted' in place, and a tombstone in history after a reload", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    for (const t of ["first", "to be deleted", "last"]) {
      await bob.send(t);
      await alice.waitForMessage(t);
    }
    const id = await idOf(alice, "to be deleted");
    const moderator = { id: "v_mod", name: "Mod", verified: true };

    proxy.inject({ type: "delete", id, by: moderator, ts: Date.now() });
    await eventually("the deleted message never showed as deleted", async () => (await textOf(alice, id)) === "message deleted");
    expect((await alice.messages()).map((m) => m.text)).toEqual(["first", "message deleted", "last"]);
    expect(await alice.page.locator(`#log .msg[data-id="${id}"] .author`).textContent()).toBe("Bob");

    // The room keeps the tombstone: `text` "" and `deleted: true` in history.
    proxy.rewrite = (f) =>
      f.type === "welcome"
        ? { ...f, history: (f.history as Frame[]).map((m) => (m.id === id ? { ...m, text: "", deleted: true } : m)) }
        : f;
    await alice.reload();
    await alice.waitForMessage("last");
    expect((await alice.messages()).map((m) => m.text)).toEqual(["first", "message deleted", "last"]);
  });

  test("everyone may delete their own message (two clicks), and only their own", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    await bob.send("from bob");
    await alice.waitForMessage("from bob");
    await alice.send("my own");
    const id = await idOf(alice, "my own");

    expect(await alice.page.locator("#log .msg button[data-action=delete]").count()).toBe(1);
    const button = alice.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`);
    expect(await button.getAttribute("aria-label")).toBe("Delete message");
    await button.click();
    expect(await button.getAttribute("aria-label")).toBe("Confirm: delete this message");
    expect(proxy.sent).toEqual([]);
    await button.click();
    const frame = await proxy.sentFrame("delete");
    expect(frame).toEqual({ type: "delete", id, nonce: expect.any(String) });
    expect(await button.isDisabled()).toBe(true);

    // Refused (the error echoes the nonce): said so, and the button works again.
    proxy.inject({ type: "error", code: "forbidden", message: "only its author or a moderator may delete a message", nonce: frame.nonce });
    await eventually("the refusal was never shown", async () => (await alice.page.locator("#notice").textContent()) === "Could not delete the message: not allowed.");
    expect(await button.isDisabled()).toBe(false);
    expect(await textOf(alice, id)).toBe("my own");
  });
});

describe("moderators", () => {
  test("a moderator sees delete on every message, ban in the list and slow mode, each sending the contract's frame", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const bobId = await userId(bob);
    await bob.send("spam spam");
    const { proxy, chat: mod } = await withProxy(room, "Mod");
    await mod.waitForMessage("spam spam");
    expect(await mod.page.locator("#log button[data-action=delete]").count()).toBe(0);
    expect(await mod.page.locator("#mod-tools").isHidden()).toBe(true);

    proxy.rewrite = (f) => (f.type === "welcome" ? { ...f, you: { ...(f.you as object), verified: true, roles: ["moderator"] } } : f);
    await mod.reload();
    await mod.waitForMessage("spam spam");
    const id = await idOf(mod, "spam spam");
    await eventually("the moderator's page never showed a delete button on Bob's message", async () =>
      (await mod.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`).count()) === 1,
    );
    const del = mod.page.locator(`#log .msg[data-id="${id}"] button[data-action=delete]`);
    await del.click();
    await del.click();
    expect(await proxy.sentFrame("delete")).toEqual({ type: "delete", id, nonce: expect.any(String) });

    // Ban, from the people list, with a duration and a reason.
    const ban = mod.page.locator(`#online .person[data-id="${bobId}"] button[data-action=ban]`);
    expect(await ban.getAttribute("aria-label")).toBe("Ban Bob");
    expect(await mod.page.locator("#online .person.own button[data-action=ban]").count()).toBe(0);
    await ban.click();
    await mod.page.locator("#ban-minutes").selectOption("1440");
    await mod.page.locator("#ban-reason").fill("  spamming links ");
    await mod.page.locator("#ban-purge").check();
    await mod.page.locator("#ban-dialog button[value=ban]").click();
    expect(await proxy.sentFrame("ban")).toEqual({ type: "ban", user: bobId, minutes: 1440, reason: "spamming links", purge: true, nonce: expect.any(String) });

    await mod.page.locator("#slow-mode").selectOption("30");
    expect(await proxy.sentFrame("settings")).toEqual({ type: "settings", slowMode: 30, nonce: expect.any(String) });
  });
});

describe("slow mode", () => {
  test("the send button counts down instead of an error after the fact; moderators' settings frames turn it on and off", async () => {
    const room = newRoom();
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    proxy.inject({ type: "settings", slowMode: 300 });
    await alice.waitForSystem(/^Slow mode is on: one message every 5 minutes$/);
    expect(await alice.page.locator("#slow-hint").textContent()).toBe("Slow mode: one message every 5 minutes");
    expect(await alice.page.locator("#send").isDisabled()).toBe(false);

    await alice.send("one");
    await alice.waitForMessage("one");
    await eventually("the send button never showed the wait", async () => await alice.page.locator("#send").isDisabled());
    const secs = Number(await alice.page.locator("#send-wait").textContent());
    expect(secs).toBeGreaterThan(0);
    expect(secs).toBeLessThanOrEqual(300);
    expect(await alice.page.locator("#send").getAttribute("aria-label")).toMatch(/^Slow mode: you can send again in \d+ seconds$/);
    // Enter during the countdown keeps the text; nothing is sent or queued.
    await alice.send("two");
    expect(await alice.page.locator("#message").inputValue()).toBe("two");
    expect(await alice.page.locator("#pending > *").count()).toBe(0);

    proxy.inject({ type: "settings", slowMode: 0 });
    await alice.waitForSystem(/^Slow mode is off$/);
    await eventually("the send button never came back", async () => !(await alice.page.locator("#send").isDisabled()));
    await alice.page.locator("#message").press("Enter");
    await alice.waitForMessage("two");
  });
});

describe("bans", () => {
  test("a banned page says why and for how long, stops retrying, and still says so after a reload", async () => {
    const room = newRoom();
    const { proxy, chat: bob } = await withProxy(room, "Bob");
    proxy.refuse = true;
    // As the room writes it (src/moderation.ts banCloseReason): the end first, then the reason.
    const until = new Date(Date.now() + 10 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    proxy.close(4003, `banned until ${until}: spamming links`);
    await eventually("the page never showed the ban", async () => await bob.page.locator("#banned").isVisible(), {
      state: async () => `status: ${await bob.status()}`,
    });
    const text = await bob.page.locator("#banned-text").textContent();
    expect(text).toMatch(/^You are banned from #t-[0-9a-f-]+ for about 10 more hours \(until .+\)\. Reason: “spamming links”$/);
    expect(await bob.status()).toBe("stopped");
    expect(await bob.page.locator("#status-text").textContent()).toBe("Banned");
    expect(await bob.page.locator("#message").isDisabled()).toBe(true);

    // The room refuses the upgrade (403, unreadable by a page): after a reload the page still knows.
    const before = proxy.urls.length;
    await bob.page.reload();
    await eventually("after a reload the page never showed the ban", async () => await bob.page.locator("#banned").isVisible(), {
      state: async () => `status: ${await bob.status()}`,
    });
    expect(proxy.urls.length).toBe(before + 1);
    expect(await bob.status()).toBe("stopped");
    expect(await bob.page.locator("#banned-text").textContent()).toContain("Reason: “spamming links”");

    // Lifted: "Try again" gets back in, and the notice goes.
    proxy.refuse = false;
    await bob.page.locator("#banned-retry").click();
    await bob.waitOnline();
    expect(await bob.page.locator("#banned").isHidden()).toBe(true);
    expect(await bob.page.locator("#message").isDisabled()).toBe(false);
  });
});

describe("large rooms", () => {
  test("presence counts: 'N online' and a partial list, then the whole list again", async () => {
    const room = newRoom();
    const bob = await h.person(room, "Bob");
    const { proxy, chat: alice } = await withProxy(room, "Alice");
    await alice.waitForOnline(["Alice", "Bob"]);
    proxy.inject({ type: "presence", count: 12_345 });
    await eventually("the count never showed", async () => (await alice.page.locator("#online-count").textContent()) === "12,345");
    expect(await alice.page.locator("#people-count").textContent()).toBe("12,345");
    expect(await alice.page.locator("#online-partial").textContent()).toBe("Showing 2 of 12,345");
    expect(await alice.page.locator("#online-partial").isVisible()).toBe(true);

    const online = [{ id: await userId(bob), name: "Bob" }, { id: await userId(alice), name: "Alice" }];
    proxy.inject({ type: "presence", count: 2, online });
    await eventually("the count never came back to 2", async () => (await alice.page.locator("#online-count").textContent()) === "2");
    expect(await alice.page.locator("#online-partial").isHidden()).toBe(true);
    await alice.waitForOnline(["Alice", "Bob"]);
  });
});

describe("embedding", () => {
  test("a JWT in the fragment goes on the upgrade as `auth` and leaves the address bar; the room stays", async () => {
    const room = newRoom();
    const proxy = new FrameProxy();
    const context = await h.browser.newContext();
    try {
      await proxy.install(context);
      const page = await context.newPage();
      const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
      await page.goto(`${h.server.url}/#${room}&auth=${jwt}`);
      // This dev server has no AUTH_JWT_SECRET and refuses the JWT (e2e/embed-auth.test.ts has one that verifies): what matters here is the URL.
      await eventually("the page never tried to connect", async () => proxy.urls.length >= 1);
      // Signed in by the host: no name to ask.
      expect(await page.locator("#name-dialog").evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);
      expect(new URL(page.url()).hash).toBe(`#${room}`);
      expect(await page.locator("#room-name").textContent()).toBe(room);
      expect(new URL(proxy.urls[0]!).searchParams.get("auth")).toBe(jwt);
      // A reload of the tab keeps it (sessionStorage), still out of the URL.
      const before = proxy.urls.length;
      await page.reload();
      await eventually("the page never connected again", async () => proxy.urls.length > before);
      expect(new URL(proxy.urls[before]!).searchParams.get("auth")).toBe(jwt);
      expect(new URL(page.url()).hash).toBe(`#${room}`);
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
          body = Buffer.from(body.toString("utf8").replace('name="edge-chat-allowed-origins" content=""', `name="edge-chat-allowed-origins" content="${host}"`));
        }
        const csp = (upstream.headers.get("content-security-policy") ?? "").replace("frame-ancestors 'none'", `frame-ancestors ${host}`);
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
            type: "welcome", room, you: { id: "v_alice", name: "Alice", verified: true, roles: [] }, token: "t", online: [{ id: "v_alice", name: "Alice", verified: true }],
            history: [], gap: false, limits: { history: 100, text: 2000, name: 32, burst: 10, perSec: 5 }, onlineCount: 1,
          }),
        );
      });
      const page = await context.newPage();
      await page.goto(`${host}/`);
      const frame = page.frameLocator("#chat");
      await eventually("the framed page never went online", async () => (await frame.locator("#status").getAttribute("data-state")) === "online", {
        state: async () => `frames: ${page.frames().map((f) => f.url()).join(", ")}\nurls: ${urls.join("\n")}`,
      });
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

describe("read-only guests", () => {
  test("a room that lets guests read only (GUESTS=read): a refused message comes back to the box with a notice", async () => {
    const room = newRoom();
    const { proxy, chat: guest } = await withProxy(room, "Guest");
    proxy.holdMessages = true;
    await guest.send("may I?");
    const frame = await proxy.sentFrame("message");
    proxy.inject({ type: "error", code: "forbidden", message: "guests may read this room, not write in it", nonce: frame.nonce });
    await eventually("the refusal was never shown", async () =>
      ((await guest.page.locator("#notice").textContent()) ?? "").startsWith("You can read this room but not write in it."),
    );
    expect(await guest.page.locator("#pending > *").count()).toBe(0);
    expect(await guest.page.locator("#message").inputValue()).toBe("may I?");
  });
});
