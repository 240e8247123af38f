// The web client's acks under the room's rule (issue 8 item 6): every ack on
// a socket after its first must advance, or the room answers with an error
// and counts a strike. Loading a room with more history than the client acks
// at once used to send the same ack twice.

import { expect, test } from "vitest";
import WebSocket from "ws";
import { newRoom, useHarness } from "./support/harness.ts";

const h = useHarness();

/** Sends `texts` from a plain WebSocket client and waits for their echoes. */
async function sendRaw(room: string, texts: string[]): Promise<void> {
  const ws = new WebSocket(`${h.server.url.replace("http", "ws")}/chat/${room}?name=loadbot`);
  let echoed = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${echoed} of ${texts.length} raw messages were echoed`)), 20_000);
    ws.on("error", reject);
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; nonce?: string; code?: string };
      if (frame.type === "welcome") for (const [i, text] of texts.entries()) ws.send(JSON.stringify({ type: "message", text, nonce: `raw-${i}` }));
      else if (frame.type === "error") reject(new Error(`raw client got error ${frame.code}`));
      else if (frame.type === "message" && frame.nonce?.startsWith("raw-") && ++echoed === texts.length) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  ws.close();
}

test("the page's acks always advance: no error frames from loading, reading and reloading a busy room", async () => {
  const room = newRoom();
  await sendRaw(room, Array.from({ length: 8 }, (_, i) => `a${i}`));
  await sendRaw(room, Array.from({ length: 8 }, (_, i) => `b${i}`));
  const up: string[] = [];
  const down: string[] = [];
  const alice = await h.person(room, "Alice", {
    setup: async (context) => {
      await context.routeWebSocket(/\/chat\//, (page) => {
        const server = page.connectToServer();
        page.onMessage((msg) => {
          up.push(String(msg));
          server.send(msg);
        });
        server.onMessage((msg) => {
          down.push(String(msg));
          page.send(msg);
        });
      });
    },
  });
  await alice.waitForMessage("b7");
  await sendRaw(room, Array.from({ length: 8 }, (_, i) => `c${i}`));
  await alice.waitForMessage("c7");
  await alice.reload();
  await alice.waitForMessage("c7");
  // A round trip through the room after every ack the page may still send.
  await alice.send("the last word");
  await alice.waitForMessage("the last word");
  const acks = up.flatMap((t) => (t.startsWith("{") ? [JSON.parse(t) as { type: string; id?: number }] : [])).filter((f) => f.type === "ack");
  expect(acks.length).toBeGreaterThanOrEqual(2);
  const errors = down.filter((t) => t.includes('"type":"error"'));
  expect(errors).toEqual([]);
});
