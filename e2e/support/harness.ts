// What every e2e file needs: one dev server and one browser for the file,
// pages opened through `person` and checked for uncaught errors after each
// test, and a fresh room name per test.

import { randomUUID } from "node:crypto";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
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
