// The web client's acks under the room's rule (issue 8 item 6): every ack on
// a socket after its first must advance, or the room answers with an error
// and counts a strike. Loading a room with more history than the client acks
// at once used to send the same ack twice.

import { expect, test } from "vitest";
import { newRoom, sendRaw, useHarness } from "./support/harness.ts";

const h = useHarness();

test("the page's acks always advance: no error frames from loading, reading and reloading a busy room", async () => {
  const room = newRoom();
  await sendRaw(
    h.server.url,
    room,
    Array.from({ length: 8 }, (_, i) => `a${i}`),
  );
  await sendRaw(
    h.server.url,
    room,
    Array.from({ length: 8 }, (_, i) => `b${i}`),
  );
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
  await sendRaw(
    h.server.url,
    room,
    Array.from({ length: 8 }, (_, i) => `c${i}`),
  );
  await alice.waitForMessage("c7");
  await alice.reload();
  await alice.waitForMessage("c7");
  // A round trip through the room after every ack the page may still send.
  await alice.send("the last word");
  await alice.waitForMessage("the last word");
  const acks = up
    .flatMap((t) => (t.startsWith("{") ? [JSON.parse(t) as { type: string; id?: number }] : []))
    .filter((f) => f.type === "ack");
  expect(acks.length).toBeGreaterThanOrEqual(2);
  const errors = down.filter((t) => t.includes('"type":"error"'));
  expect(errors).toEqual([]);
});
