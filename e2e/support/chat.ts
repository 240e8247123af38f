// Drives the web client in a real Chromium: one ChatPage per person, each in
// its own browser context (own localStorage, so its own identity).

import { chromium, type Browser, type BrowserContext, type Page, type ViewportSize } from "playwright-core";
import { sleep } from "../../tools/harness/wait.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  // playwright-core gives every launch a fresh temporary profile of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Polls until `check` holds. On timeout the error says what never happened
 * and, through `state`, what the page showed instead.
 */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  { timeout = 20_000, state }: { timeout?: number; state?: () => Promise<string> } = {},
): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      const seen = state ? await state().catch((e: unknown) => `(could not read the page: ${String(e)})`) : "";
      throw new Error(`${what} — not within ${timeout} ms${seen ? `\n${seen}` : ""}`);
    }
    await sleep(100);
  }
}

export interface LogLine {
  kind: "message" | "system";
  text: string;
  author?: string;
  own?: boolean;
  id?: number;
}

export class ChatPage {
  readonly dialogs: string[] = [];
  readonly errors: string[] = [];

  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on("dialog", (d) => {
      this.dialogs.push(`${d.type()}: ${d.message()}`);
      void d.dismiss();
    });
    page.on("pageerror", (e) => this.errors.push(e.message));
  }

  /**
   * A new person (fresh context) opening `room`: a guest answers the name
   * prompt; with `auth` (a host JWT) the page is opened as a host links to it,
   * `#room&auth=JWT`, and asks no name.
   */
  static async open(
    browser: Browser,
    baseUrl: string,
    room: string,
    name: string,
    opts: {
      viewport?: ViewportSize;
      colorScheme?: "light" | "dark";
      /** Runs before the page loads, e.g. to route its WebSocket. */
      setup?: (context: BrowserContext) => Promise<void>;
      auth?: string;
    } = {},
  ): Promise<ChatPage> {
    const context = await browser.newContext({
      viewport: opts.viewport ?? { width: 1000, height: 700 },
      colorScheme: opts.colorScheme ?? "light",
    });
    await opts.setup?.(context);
    const chat = new ChatPage(name, context, await context.newPage());
    if (opts.auth === undefined) {
      await chat.page.goto(`${baseUrl}/?room=${room}`);
      await chat.page.locator("#name-input").fill(name);
      await chat.page.locator("#name-dialog button[value=save]").click();
    } else {
      await chat.page.goto(`${baseUrl}/#${room}&auth=${opts.auth}`);
    }
    await chat.waitOnline();
    return chat;
  }

  async reload(): Promise<void> {
    await this.page.reload();
    await this.waitOnline();
  }

  async close(): Promise<void> {
    await this.context.close();
  }

  status(): Promise<string> {
    return this.page
      .locator("#status")
      .getAttribute("data-state")
      .then((s) => s ?? "");
  }

  async waitOnline(timeout = 30_000): Promise<void> {
    await eventually(
      `${this.name}'s page never showed the connection as online`,
      async () => (await this.status()) === "online",
      {
        timeout,
        state: async () => `status: ${await this.page.locator("#status").innerText()}`,
      },
    );
  }

  async send(text: string): Promise<void> {
    const input = this.page.locator("#message");
    await input.fill(text);
    await input.press("Enter");
  }

  /** Every line of the log, in order. */
  lines(): Promise<LogLine[]> {
    return this.page.evaluate(() =>
      Array.from(document.querySelectorAll("#log > .msg, #log > .system"), (node): LogLine => {
        const el = node as HTMLElement;
        if (el.classList.contains("system"))
          return { kind: "system", text: el.querySelector("span")?.textContent ?? "" };
        return {
          kind: "message",
          text: el.querySelector(".text")?.textContent ?? "",
          author: el.querySelector(".author")?.textContent ?? "",
          own: el.classList.contains("own"),
          id: Number(el.dataset.id),
        };
      }),
    );
  }

  async messages(): Promise<LogLine[]> {
    return (await this.lines()).filter((l) => l.kind === "message");
  }

  /** The log as text, for failure messages. */
  async describe(): Promise<string> {
    const lines = await this.lines();
    const pending = await this.page.locator("#pending .text").allTextContents();
    return [
      `${this.name}'s page: status ${await this.status()}, ${lines.length} log lines`,
      ...lines.map((l) =>
        l.kind === "system" ? `  · ${l.text}` : `  #${l.id} ${l.author}${l.own ? " (own)" : ""}: ${l.text}`,
      ),
      ...pending.map((t) => `  (pending) ${t}`),
    ].join("\n");
  }

  async waitForMessage(text: string, timeout = 20_000): Promise<void> {
    await eventually(
      `${this.name} never saw the message ${JSON.stringify(text)}`,
      async () => (await this.messages()).some((m) => m.text === text),
      { timeout, state: () => this.describe() },
    );
  }

  async waitForSystem(pattern: RegExp, timeout = 20_000): Promise<void> {
    await eventually(
      `${this.name} never saw a system line matching ${pattern}`,
      async () => (await this.lines()).some((l) => l.kind === "system" && pattern.test(l.text)),
      { timeout, state: () => this.describe() },
    );
  }

  onlineNames(): Promise<string[]> {
    return this.page.locator("#online .name").allTextContents();
  }

  async waitForOnline(names: string[], timeout = 20_000): Promise<void> {
    const want = [...names].sort();
    await eventually(
      `${this.name}'s online list never became ${JSON.stringify(want)}`,
      async () => JSON.stringify((await this.onlineNames()).sort()) === JSON.stringify(want),
      {
        timeout,
        state: async () =>
          `online list: ${JSON.stringify(await this.onlineNames())}, count ${await this.page.locator("#online-count").textContent()}`,
      },
    );
  }
}
