// The web client against the real Worker: chatting, presence, identity
// across a reload, text-only rendering, the narrow layout, the page's
// security headers and layout defences. (The README's screenshot is a
// script: `npm run screenshot`.)

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { BrowserContext } from "playwright-core";
import { describe, expect, test } from "vitest";
import { type ChatPage, eventually } from "./support/chat.ts";
import { newRoom, useHarness } from "./support/harness.ts";

const h = useHarness();
const person = h.person;

/** How many times each text appears in a page's log. */
async function counts(p: ChatPage): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of await p.messages()) out[m.text] = (out[m.text] ?? 0) + 1;
  return out;
}

describe("web client", () => {
  test("two people chat both ways, see each other online, and see a leave", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice");
    const bob = await person(room, "Bob");

    await alice.waitForOnline(["Alice", "Bob"]);
    await bob.waitForOnline(["Alice", "Bob"]);
    expect(await alice.page.locator("#online-count").textContent()).toBe("2");
    await alice.waitForSystem(/^Bob joined$/);

    await alice.send("hello from alice");
    await bob.send("hi alice\nsecond line");
    for (const p of [alice, bob]) {
      await p.waitForMessage("hello from alice");
      await p.waitForMessage("hi alice\nsecond line");
    }

    const seenByAlice = await alice.messages();
    expect(seenByAlice.map((m) => [m.author, m.text, m.own])).toEqual([
      ["Alice", "hello from alice", true],
      ["Bob", "hi alice\nsecond line", false],
    ]);
    const seenByBob = await bob.messages();
    expect(seenByBob.map((m) => [m.author, m.text, m.own])).toEqual([
      ["Alice", "hello from alice", false],
      ["Bob", "hi alice\nsecond line", true],
    ]);
    // Same ids on both sides: one stream.
    expect(seenByBob.map((m) => m.id)).toEqual(seenByAlice.map((m) => m.id));
    // Line breaks are kept and shown.
    const height = await bob.page.locator("#log .msg:last-child .text").evaluate((el) => el.getClientRects().length);
    expect(height).toBeGreaterThan(0);
    expect(await bob.page.locator("#log .msg:last-child .text").evaluate((el) => getComputedStyle(el).whiteSpace)).toBe(
      "pre-wrap",
    );
    expect(await alice.page.locator("#pending > *").count()).toBe(0);

    await bob.close();
    await alice.waitForSystem(/^Bob left$/);
    await alice.waitForOnline(["Alice"]);
  });

  test("a reload shows earlier messages once each and keeps the identity", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice");
    const bob = await person(room, "Bob");
    await alice.send("one");
    await bob.waitForMessage("one");
    await bob.send("two");
    await alice.waitForMessage("two");
    await alice.send("three");
    await bob.waitForMessage("three");
    const before = await alice.messages();

    await alice.reload();
    await alice.waitForMessage("three");
    const after = await alice.messages();
    expect(after.map((m) => [m.id, m.author, m.text, m.own])).toEqual(
      before.map((m) => [m.id, m.author, m.text, m.own]),
    );
    expect(after.map((m) => m.own)).toEqual([true, false, true]);
    // Asked once: no name prompt after the reload, and the same name.
    expect(await alice.page.locator("#name-dialog").evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);
    expect(await alice.page.locator("#me").textContent()).toBe("Alice");
    // The same user id: Bob still sees one Alice, not two.
    await bob.waitForOnline(["Alice", "Bob"]);

    // A message sent after the reload is still "own" and arrives once.
    await alice.send("four");
    await bob.waitForMessage("four");
    await eventually("Alice's 'four' never showed up as her own", async () =>
      (await alice.messages()).some((m) => m.text === "four" && m.own),
    );
    expect(await counts(alice)).toEqual({ one: 1, two: 1, three: 1, four: 1 });
  });

  test("markup in a message or a name is shown as text and runs nothing", async () => {
    const room = newRoom();
    const payload = `<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>`;
    const mallory = await person(room, "<i>Mallory</i>");
    const bob = await person(room, "Bob");
    await mallory.send(payload);
    await bob.waitForMessage(payload);
    await mallory.waitForMessage(payload);

    for (const p of [bob, mallory]) {
      expect(await p.page.locator("#log img, #log script, #log b, #log i, #online i").count()).toBe(0);
      expect(p.dialogs).toEqual([]);
    }
    const message = (await bob.messages()).find((m) => m.text === payload);
    expect(message?.author).toBe("<i>Mallory</i>");
    await bob.waitForOnline(["<i>Mallory</i>", "Bob"]);
    // A round trip after the payload: a deferred onerror, had anything made it
    // an element, would have run before this later message is drawn.
    await mallory.send("after the payload");
    await bob.waitForMessage("after the payload");
    expect(bob.dialogs).toEqual([]);
  });

  test("at 360 px wide there is no horizontal scrollbar", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice with a rather long name", { viewport: { width: 360, height: 740 } });
    await alice.send("x".repeat(300));
    await alice.send("A normal sentence that wraps over several lines on a narrow phone screen, as most do.");
    await alice.waitForMessage("x".repeat(300));
    await alice.page.locator("#people-toggle").click();
    const sizes = await alice.page.evaluate(() => {
      const scroller = document.getElementById("scroller")!;
      return {
        doc: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        log: [scroller.scrollWidth, scroller.clientWidth],
      };
    });
    expect(sizes.doc[0], "page wider than the viewport").toBeLessThanOrEqual(sizes.doc[1]!);
    expect(sizes.log[0], "message log wider than its box").toBeLessThanOrEqual(sizes.log[1]!);
    expect(await alice.page.locator("#people").isVisible()).toBe(true);
  });

  test("changing the name keeps the identity; others see the new name", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice");
    const bob = await person(room, "Bob");
    await alice.send("as Alice");
    await bob.waitForMessage("as Alice");

    await alice.page.locator("#me").click();
    await alice.page.locator("#name-input").fill("Alicia");
    await alice.page.locator("#name-dialog button[value=save]").click();
    await bob.waitForOnline(["Alicia", "Bob"]);
    await alice.waitOnline();
    expect(await alice.page.locator("#me").textContent()).toBe("Alicia");
    await alice.send("as Alicia");
    await bob.waitForMessage("as Alicia");
    await eventually(
      "Alice's messages from before and after the rename are not both her own",
      async () => {
        const own = (await alice.messages()).filter((m) => m.own).map((m) => m.text);
        return JSON.stringify(own) === JSON.stringify(["as Alice", "as Alicia"]);
      },
      { state: () => alice.describe() },
    );
  });

  test("keyboard: Enter sends, Shift+Enter breaks the line; a counter near the limit", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice");
    const input = alice.page.locator("#message");
    await input.focus();
    await alice.page.keyboard.type("line one");
    await alice.page.keyboard.press("Shift+Enter");
    await alice.page.keyboard.type("line two");
    await alice.page.keyboard.press("Enter");
    await alice.waitForMessage("line one\nline two");
    expect(await input.inputValue()).toBe("");

    // Code points, not UTF-16 units: 1990 astral characters are 1990 of 2000.
    await input.fill("😀".repeat(1990));
    expect(await alice.page.locator("#counter").textContent()).toBe("10 left");
    await input.fill("a".repeat(2001));
    expect(await alice.page.locator("#counter").textContent()).toBe("1 over the limit");
    await input.press("Enter");
    expect(await alice.page.locator("#notice").textContent()).toContain("at most 2000");
    expect(await alice.page.locator("#pending > *").count()).toBe(0);
  });

  test("scrolled up, new messages do not move the view; a button brings you down", async () => {
    const room = newRoom();
    const alice = await person(room, "Alice", { viewport: { width: 800, height: 500 } });
    const bob = await person(room, "Bob");
    for (let i = 1; i <= 25; i++) await bob.send(`filler ${i}`);
    await alice.waitForMessage("filler 25", 30_000);
    const scroller = alice.page.locator("#scroller");
    const atBottom = () => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 50);
    await eventually("Alice was not kept at the bottom while reading the newest", atBottom);

    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await bob.send("while Alice reads old ones");
    await alice.waitForMessage("while Alice reads old ones");
    expect(await scroller.evaluate((el) => el.scrollTop)).toBe(0);
    const jump = alice.page.locator("#jump");
    expect(await jump.isVisible()).toBe(true);
    expect(await jump.textContent()).toMatch(/1 new message/);
    await jump.click();
    await eventually("the new-messages button did not bring Alice to the bottom", atBottom);
    expect(await jump.isVisible()).toBe(false);
  });

  test("the room comes from the URL hash too, shown in the header and title", async () => {
    const context = await h.browser.newContext();
    try {
      const page = await context.newPage();
      const room = newRoom();
      await page.goto(`${h.server.url}/#${room.toUpperCase()}`);
      await page.locator("#name-input").fill("Hasher");
      await page.locator("#name-dialog button[value=save]").click();
      await eventually(
        "the page opened via #room never got online",
        async () => (await page.locator("#status").getAttribute("data-state")) === "online",
      );
      expect(await page.locator("#room-name").textContent()).toBe(room);
      expect(await page.title()).toBe(`#${room} · Edge Chat`);
    } finally {
      await context.close();
    }
  });

  test("a link with a broken escape (/#%E0%A4%A) is an invalid room, not a dead page", async () => {
    const context = await h.browser.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${h.server.url}/#%E0%A4%A`);
      await page.locator("#name-input").fill("Linker", { timeout: 20_000 });
      await page.locator("#name-dialog button[value=save]").click();
      await eventually(
        "the page opened via a malformed hash never got online",
        async () => (await page.locator("#status").getAttribute("data-state")) === "online",
        {
          state: async () => `status: ${await page.locator("#status").innerText()}, errors: ${JSON.stringify(errors)}`,
        },
      );
      expect(await page.locator("#room-name").textContent()).toBe("lobby");
      expect(await page.locator("#notice").textContent()).toBe(
        "“%E0%A4%A” is not a valid room name, so you are in #lobby.",
      );
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test("the page and its files carry a CSP, nosniff and no-referrer; chatting under it violates nothing", async () => {
    const csp =
      "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
    for (const path of ["/", "/js/app.js", "/js/rules.js", "/style.css", "/favicon.svg"]) {
      const res = await fetch(`${h.server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(
        [
          res.headers.get("content-security-policy"),
          res.headers.get("x-content-type-options"),
          res.headers.get("referrer-policy"),
        ],
        path,
      ).toEqual([csp, "nosniff", "no-referrer"]);
    }
    // The header file is configuration, not something to serve.
    expect((await fetch(`${h.server.url}/_headers`)).status).toBe(404);

    const violations: string[] = [];
    const watch = async (context: BrowserContext) => {
      context.on("console", (m) => {
        if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(`console: ${m.text()}`);
      });
      await context.exposeBinding("reportViolation", (_source, what: string) => void violations.push(what));
      await context.addInitScript(() => {
        const report = (window as unknown as { reportViolation: (what: string) => void }).reportViolation;
        document.addEventListener("securitypolicyviolation", (e) =>
          report(`${e.effectiveDirective} blocked ${e.blockedURI}`),
        );
      });
    };
    const room = newRoom();
    const alice = await person(room, "Alice", { setup: watch });
    const bob = await person(room, "Bob", { setup: watch });
    await alice.send("under a strict CSP");
    await bob.waitForMessage("under a strict CSP");
    await bob.send("and back");
    await alice.waitForMessage("and back");
    await alice.page.locator("#switch-room").click();
    await alice.page.locator("#room-dialog [data-cancel]").click();
    await alice.reload();
    await alice.waitForMessage("and back");
    expect(violations).toEqual([]);
  });

  test("another site cannot frame the chat (frame-ancestors 'none')", async () => {
    // A page on another origin (same host, another port: Chromium's local
    // network rules would block a public origin for a reason of their own)
    // that frames the chat and notes when the frame has loaded.
    const framer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<iframe src="${h.server.url}/?room=${newRoom()}" onload="document.title='frame loaded'"></iframe>`);
    });
    await new Promise<void>((resolve) => framer.listen(0, "127.0.0.1", resolve));
    const context = await h.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${(framer.address() as AddressInfo).port}/`);
      await eventually(
        "the framing page never saw its frame load (or fail to)",
        async () => (await page.title()) === "frame loaded",
      );
      const chat = page.frames().find((f) => f !== page.mainFrame());
      expect(chat, "no child frame").toBeDefined();
      // Chromium replaces a frame refused by frame-ancestors with its error page.
      expect(chat!.url()).toBe("chrome-error://chromewebdata/");
      expect(await chat!.locator("#composer").count(), "the chat rendered inside another site's frame").toBe(0);
    } finally {
      await context.close();
      await new Promise((resolve) => framer.close(resolve));
    }
  });

  test("names and text that attack the layout stay in their place", async () => {
    const room = newRoom();
    // The room now refuses such names, so Bob's socket plays an older room that let one through.
    const rewrite = async (context: BrowserContext) => {
      await context.routeWebSocket(/\/chat\//, (ws) => {
        const server = ws.connectToServer();
        ws.onMessage((m) => server.send(m));
        server.onMessage((m) => ws.send(typeof m === "string" ? m.replaceAll("Mallory-rlo", "\u202eevil") : m));
      });
    };
    const bob = await person(room, "Bob", { setup: rewrite });
    const mallory = await person(room, "Mallory-rlo");
    const zalgo = `a${"\u0301".repeat(1999)}`;
    await mallory.send(zalgo);
    await bob.waitForMessage(zalgo);
    await bob.waitForSystem(/evil joined$/);

    // The join line: the name is isolated, so " joined" and the time keep their order.
    const join = bob.page.locator("#log > .system.presence").last();
    const [said, time] = [
      await join.locator(":scope > span").boundingBox(),
      await join.locator(":scope > time").boundingBox(),
    ];
    expect(said && time, "join line not drawn").toBeTruthy();
    expect(time!.x, "the time was drawn before the words (reordered by the name)").toBeGreaterThanOrEqual(
      said!.x + said!.width - 1,
    );
    expect(await join.locator(":scope > span").evaluate((el) => el.firstElementChild?.tagName)).toBe("BDI");

    // The message: author before time, and the stacked marks do not paint over the header above the bubble.
    const msg = bob.page.locator("#log > .msg").last();
    const [author, stamp] = [await msg.locator(".author").boundingBox(), await msg.locator("time").boundingBox()];
    expect(stamp!.x).toBeGreaterThanOrEqual(author!.x + author!.width - 1);
    await bob.page.locator("#message").blur();
    const header = msg.locator(".meta");
    const shot = () => header.screenshot({ animations: "disabled", caret: "hide" });
    const withText = await shot();
    await msg.locator(".text").evaluate((el) => ((el as HTMLElement).style.visibility = "hidden"));
    const withoutText = await shot();
    expect(withText.equals(withoutText), "the message's combining marks drew over its header").toBe(true);

    // The client refuses such a name before the server has to.
    await bob.page.locator("#me").click();
    for (const bad of ["right\u202eleft", "a\u200bb", "bot"]) {
      await bob.page.locator("#name-input").fill(bad);
      expect(
        await bob.page.locator("#name-input").evaluate((el) => (el as HTMLInputElement).validity.valid),
        JSON.stringify(bad),
      ).toBe(false);
    }
    await bob.page.locator("#name-input").fill("\u{1f469}\u200d\u{1f4bb}");
    expect(await bob.page.locator("#name-input").evaluate((el) => (el as HTMLInputElement).validity.valid)).toBe(true);
  });
});
