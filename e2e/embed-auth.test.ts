// The README's embedding recipe against the real Worker: a host site in
// ALLOWED_ORIGINS frames the chat, mints HS256 JWTs on its server, and hands
// them over when the page asks (`edge-chat:need-auth`). The first one the host
// hands out is signed with the wrong key: the room refuses it (401, which the
// page cannot read), the page asks again, and the next one gets it in as a
// verified user.

import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { DevServer } from "../tools/harness/devserver.ts";
import { eventually, launchBrowser } from "./support/chat.ts";
import { startDevServer } from "./support/devserver.ts";
import { newRoom } from "./support/harness.ts";

const SECRET = "e2e-host-jwt-secret-of-at-least-32-bytes";

/** The README's `chatJwt`, as a host's server would write it. */
function chatJwt(user: { id: string; name: string }, secret: string): string {
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub: user.id, name: user.name, iat: now, exp: now + 600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

let chat: DevServer | undefined;
let browser: Browser | undefined;
let host: Server | undefined;
let hostOrigin = "";
let room = "";
const minted: string[] = [];

beforeAll(async () => {
  room = newRoom();
  host = createServer((req, res) => {
    if (req.url === "/chat-token") {
      // The first token is signed with another key: a JWT the room refuses.
      const jwt = chatJwt({ id: "alice-42", name: "Alice Host" }, minted.length === 0 ? "not-the-secret" : SECRET);
      minted.push(jwt);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jwt }));
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html>
<iframe id="chat" src="${chat!.url}/?room=${room}" title="Chat" style="width:600px;height:500px;border:0"></iframe>
<script>
  const chat = document.getElementById("chat");
  const CHAT = ${JSON.stringify(chat!.url)};
  addEventListener("message", async (ev) => {
    if (ev.origin !== CHAT || ev.data?.type !== "edge-chat:need-auth") return;
    const { jwt } = await (await fetch("/chat-token")).json();
    chat.contentWindow.postMessage({ type: "edge-chat:auth", jwt }, CHAT);
  });
</script>`);
  });
  await new Promise<void>((resolve) => host!.listen(0, "127.0.0.1", resolve));
  hostOrigin = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  [chat, browser] = await Promise.all([
    startDevServer({ ALLOWED_ORIGINS: hostOrigin, AUTH_JWT_SECRET: SECRET }),
    launchBrowser(),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await chat?.dispose();
  if (host !== undefined) await new Promise((resolve) => host!.close(resolve));
});

test("framed by an allowed site: the JWT comes by postMessage, a refused one is replaced, and the user is verified", async () => {
  const context = await browser!.newContext();
  try {
    const page = await context.newPage();
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${hostOrigin}/`);
    const frame = page.frameLocator("#chat");
    await eventually(
      "the framed chat never went online",
      async () => (await frame.locator("#status").getAttribute("data-state")) === "online",
      {
        timeout: 60_000,
        state: async () =>
          `status: ${await frame.locator("#status").innerText()}; minted ${minted.length}; sockets:\n${sockets.join("\n")}`,
      },
    );
    // Every connect went with the JWT the host had just handed out: the refused one, then the good one.
    expect(minted).toHaveLength(2);
    expect(sockets.map((u) => new URL(u).searchParams.get("auth"))).toEqual(minted);
    expect(await frame.locator("#me").textContent()).toBe("Alice Host");
    expect(await frame.locator("#me").getAttribute("aria-label")).toBe("Signed in as Alice Host");
    expect(await frame.locator("#online .person.own .badge").getAttribute("aria-label")).toBe("verified");
    expect(await frame.locator("#name-dialog").evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);
  } finally {
    await context.close();
  }
});
