// The room under settings other than the defaults (see vitest.config.ts):
// HISTORY_SIZE 5, MAX_CONNECTIONS 3, RATE_BURST 2, RATE_PER_SEC 0.5.

import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { History } from "../../src/history.ts";
import type { ChatRoom } from "../../src/room.ts";
import { Client, freshRoom, join, request, roomStub, seed, upgradeHeaders } from "../helpers.ts";

describe("settings", () => {
  it("announces them in welcome.limits", async () => {
    const { welcome } = await join(freshRoom());
    expect(welcome.limits).toEqual({ history: 5, text: 2000, name: 32, burst: 2, perSec: 0.5 });
  });

  it("keeps HISTORY_SIZE messages in as many rows", async () => {
    const room = freshRoom();
    await seed(room, 12);
    const { welcome } = await join(room);
    expect(welcome.history.map((m) => m.id)).toEqual([8, 9, 10, 11, 12]);
    const behind = await join(room, { after: 6 });
    expect(behind.welcome).toMatchObject({ gap: true });
    const edge = await join(room, { after: 7 });
    expect(edge.welcome.gap).toBe(false);
    const rows = await runInDurableObject(roomStub(room), (_: ChatRoom, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages").one(),
    );
    expect(rows.n).toBe(5);
  });

  it("keeps the newest 5 when the room restarts with HISTORY_SIZE 5 after running with 20, in 5 rows", async () => {
    const room = freshRoom();
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => {
      const before = new History(state.storage.sql, 20);
      for (let i = 1; i <= 12; i++) before.append({ id: "bot", name: "bot" }, `m${i}`, undefined, i);
    });
    // A new instance reads the table: the room restarted with HISTORY_SIZE 5.
    await expect(runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.abort("restart"))).rejects.toThrow();
    const { welcome } = await join(room);
    expect(welcome.history.map((m) => m.text)).toEqual(["m8", "m9", "m10", "m11", "m12"]);
    expect((await join(room, { after: 6 })).welcome.gap).toBe(true);
    await seed(room, 1);
    const edge = await join(room, { after: 8 });
    expect(edge.welcome).toMatchObject({ gap: false });
    expect(edge.welcome.history.map((m) => m.id)).toEqual([9, 10, 11, 12, 13]);
    const rows = await runInDurableObject(roomStub(room), (_: ChatRoom, state) =>
      state.storage.sql.exec<{ slot: number; id: number }>("SELECT slot, id FROM messages ORDER BY id").toArray(),
    );
    expect(rows).toEqual([9, 10, 11, 12, 13].map((id) => ({ slot: id % 5, id })));
  });

  it("applies RATE_BURST", async () => {
    const { client } = await join(freshRoom());
    for (let i = 0; i < 3; i++) client.say(`m${i}`);
    expect((await client.message()).text).toBe("m0");
    expect((await client.message()).text).toBe("m1");
    await client.error("rate_limited");
  });

  it("closes a socket that acks but falls more than HISTORY_SIZE behind, and it catches up from history", async () => {
    const room = freshRoom();
    const stalled = await join(room, { name: "stalled" });
    const steady = await join(room, { name: "steady" });
    const plain = await join(room, { name: "plain" });
    await stalled.client.next("steady's join");
    await stalled.client.next("plain's join");
    await steady.client.next("plain's join");
    stalled.client.send({ type: "ack", id: 0 });
    steady.client.send({ type: "ack", id: 0 });
    await seed(room, 3);
    for (let i = 0; i < 3; i++) await steady.client.message();
    steady.client.send({ type: "ack", id: 3 });
    await seed(room, 4);
    // Message 6 is more than 5 beyond the stalled socket's ack of 0.
    const stalledSaw = [];
    for (let i = 0; i < 5; i++) stalledSaw.push((await stalled.client.message()).id);
    expect(stalledSaw).toEqual([1, 2, 3, 4, 5]);
    expect(await stalled.client.closed).toEqual({ code: 1008, reason: expect.stringContaining("behind") });
    // The one that acks as it reads, and the v1 one that never acks, stay.
    // The stalled user leaves right after message 6.
    const read = async (client: typeof steady.client, count: number) => {
      const seen = [];
      for (let i = 0; i < count; i++) {
        const f = await client.next(`frame ${i + 1} of ${count}`);
        seen.push(f.type === "message" ? `message ${f.id}` : f.type);
      }
      return seen;
    };
    expect(await read(steady.client, 5)).toEqual(["message 4", "message 5", "message 6", "leave", "message 7"]);
    expect(await read(plain.client, 8)).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((i) => `message ${i}`),
      "leave",
      "message 7",
    ]);
    // Reconnecting with after, the stalled client gets what it missed.
    const back = await join(room, { name: "stalled", token: stalled.welcome.token, after: 5 });
    expect(back.welcome.history.map((m) => m.id)).toEqual([6, 7]);
    expect(back.welcome.gap).toBe(false);
  });

  it("answers 503 beyond MAX_CONNECTIONS, and admits again once one leaves", async () => {
    const room = freshRoom();
    const clients = await Promise.all([0, 1, 2].map(() => join(room)));
    const refused = await request(`/chat/${room}`, { headers: upgradeHeaders() });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({ error: "room_full", message: expect.any(String) });
    const first = clients[0]!.client;
    first.close();
    await first.closed;
    const again = await request(`/chat/${room}`, { headers: upgradeHeaders() });
    expect(again.status).toBe(101);
    await new Client(again.webSocket!).welcome();
  });
});
