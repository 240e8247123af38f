// Embedding: a site listed in ALLOWED_ORIGINS may frame the chat, a site that
// is not listed may not, and the framed page learns which parent origins it
// may take a host JWT from (the meta tag the Worker puts in the page).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Frame } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { eventually, launchBrowser } from "./support/chat.ts";
import type { DevServer } from "../tools/harness/devserver.ts";
import { startDevServer } from "./support/devserver.ts";
import { newRoom } from "./support/harness.ts";

/** A page on another origin (same host, another port) that frames `src`. */
async function framer(): Promise<{ server: Server; origin: string; frame(src: string): void }> {
  let src = "about:blank";
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<iframe src="${src}" onload="document.title='frame loaded'"></iframe>`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    frame(url: string) {
      src = url;
    },
  };
}

let chat: DevServer | undefined;
let browser: Browser | undefined;
let host: Awaited<ReturnType<typeof framer>> | undefined;
let stranger: Awaited<ReturnType<typeof framer>> | undefined;

beforeAll(async () => {
  // The framing sites first: the chat's ALLOWED_ORIGINS names one of them.
  [host, stranger] = await Promise.all([framer(), framer()]);
  [chat, browser] = await Promise.all([startDevServer({ ALLOWED_ORIGINS: host.origin }), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await chat?.dispose();
  for (const f of [host, stranger]) if (f !== undefined) await new Promise((resolve) => f.server.close(resolve));
});

/** Opens `site`, which frames the chat, and returns the chat's frame once it has loaded (or failed to). */
async function framed(site: Awaited<ReturnType<typeof framer>>): Promise<{ frame: Frame; close(): Promise<void> }> {
  site.frame(`${chat!.url}/?room=${newRoom()}`);
  const context = await browser!.newContext();
  const page = await context.newPage();
  await page.goto(`${site.origin}/`);
  await eventually(
    "the framing page never saw its frame load (or fail to)",
    async () => (await page.title()) === "frame loaded",
  );
  const frame = page.frames().find((f) => f !== page.mainFrame());
  if (frame === undefined) throw new Error("no child frame");
  return { frame, close: () => context.close() };
}

describe("embedding", () => {
  test("a site in ALLOWED_ORIGINS can frame the chat, which names that site as the parent it takes a JWT from", async () => {
    const res = await fetch(`${chat!.url}/`);
    expect(res.headers.get("content-security-policy")).toBe(
      `default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors ${host!.origin}`,
    );
    const { frame, close } = await framed(host!);
    try {
      expect(frame.url().startsWith(`${chat!.url}/`)).toBe(true);
      await frame.locator("#composer").waitFor();
      expect(await frame.locator('meta[name="edge-chat-allowed-origins"]').getAttribute("content")).toBe(host!.origin);
    } finally {
      await close();
    }
  });

  test("a site not in ALLOWED_ORIGINS still cannot", async () => {
    const { frame, close } = await framed(stranger!);
    try {
      // Chromium replaces a frame refused by frame-ancestors with its error page.
      expect(frame.url()).toBe("chrome-error://chromewebdata/");
      expect(await frame.locator("#composer").count()).toBe(0);
    } finally {
      await close();
    }
  });
});
