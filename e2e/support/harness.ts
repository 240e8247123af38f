// What every e2e file needs: one dev server and one browser for the file,
// pages opened through `person` and checked for uncaught errors after each
// test, and a fresh room name per test.

import { randomUUID } from "node:crypto";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import WebSocket from "ws";
import { ChatPage, launchBrowser } from "./chat.ts";
import type { DevServer } from "../../tools/harness/devserver.ts";
import { startDevServer } from "./devserver.ts";

export interface Harness {
  readonly server: DevServer;
  readonly browser: Browser;
  person(room: string, name: string, opts?: Parameters<typeof ChatPage.open>[4]): Promise<ChatPage>;
}

export function newRoom(): string {
  return `t-${randomUUID()}`;
}

/**
 * Registers the file's hooks; call once at the top level of a test file.
 * `vars` go to the file's dev server (see startDevServer).
 */
export function useHarness(vars: Readonly<Record<string, string>> = {}): Harness {
  let server: DevServer | undefined;
  let browser: Browser | undefined;
  const open: ChatPage[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer(vars), launchBrowser()]);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });

  afterEach(async () => {
    for (const p of open.splice(0)) {
      expect(p.errors, `${p.name}'s page threw`).toEqual([]);
      await p.close().catch(() => {});
    }
  });

  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the ${what} did not start (see beforeAll)`);
    return value;
  };

  return {
    get server() {
      return started(server, "dev server");
    },
    get browser() {
      return started(browser, "browser");
    },
    async person(room, name, opts) {
      const p = await ChatPage.open(started(browser, "browser"), started(server, "dev server").url, room, name, opts);
      open.push(p);
      return p;
    },
  };
}

/** Messages sent, echoed and stored by a plain WebSocket client (not a page). */
export async function sendRaw(baseUrl: string, room: string, texts: string[]): Promise<void> {
  const ws = new WebSocket(`${baseUrl.replace("http", "ws")}/chat/${room}?name=loadbot`);
  let echoed = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${echoed} of ${texts.length} raw messages were echoed`)),
      20_000,
    );
    ws.on("error", reject);
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; nonce?: string; code?: string };
      if (frame.type === "welcome") {
        for (const [i, text] of texts.entries()) ws.send(JSON.stringify({ type: "message", text, nonce: `raw-${i}` }));
      } else if (frame.type === "error") reject(new Error(`raw client got error ${frame.code}`));
      else if (frame.type === "message" && frame.nonce?.startsWith("raw-") && ++echoed === texts.length) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  ws.close();
}
