// The opt-in batching extension: `batch=1` gathers a socket's broadcasts.

import { describe, expect, it } from "vitest";
import { BatchQueue } from "../src/batch.ts";
import type { BroadcastFrame } from "../src/protocol.ts";
import { type Client, freshRoom, join } from "./helpers.ts";

/** Reads batch frames until `count` broadcasts have arrived; fails on anything else. */
async function broadcasts(client: Client, count: number): Promise<{ frames: BroadcastFrame[]; batches: number }> {
  const frames: BroadcastFrame[] = [];
  let batches = 0;
  while (frames.length < count) {
    const frame = await client.next(`a batch with broadcast ${frames.length + 1} of ${count}`);
    if (frame.type !== "batch") throw new Error(`expected a batch frame, got ${JSON.stringify(frame)}`);
    expect(frame.frames.length).toBeGreaterThan(0);
    frames.push(...frame.frames);
    batches++;
  }
  expect(frames).toHaveLength(count);
  return { frames, batches };
}

describe("batch=1", () => {
  it("gets the same broadcasts as a plain socket, in the same order, gathered into batch frames", async () => {
    const room = freshRoom();
    const batched = await join(room, { name: "batched", batch: true });
    const plain = await join(room, { name: "plain" });
    const senders = [];
    for (let i = 0; i < 3; i++) senders.push(await join(room, { name: `s${i}` }));
    for (const [i, s] of senders.entries()) for (let n = 0; n < 5; n++) s.client.say(`s${i}-${n}`, `n${i}-${n}`);
    const expected = [];
    for (let i = 0; i < senders.length + 15; i++) expected.push(await plain.client.next(`plain frame ${i + 1}`));
    // The batched socket also saw the plain one join, before everything else.
    const { frames, batches } = await broadcasts(batched.client, expected.length + 1);
    expect(frames[0]).toEqual({ type: "join", user: plain.welcome.you, ts: expect.any(Number) });
    expect(frames.slice(1)).toEqual(expected);
    // 19 broadcasts sent within a few milliseconds arrive in far fewer frames.
    expect(batches).toBeLessThan(expected.length);
  });

  it("still gets welcome first and its own errors at once, unbatched", async () => {
    const room = freshRoom();
    const { client, welcome } = await join(room, { batch: true });
    expect(welcome.type).toBe("welcome");
    client.send("{");
    expect(await client.next("error")).toMatchObject({ type: "error", code: "bad_json" });
    client.say("mine", "c1");
    const { frames } = await broadcasts(client, 1);
    expect(frames[0]).toMatchObject({ type: "message", id: 1, text: "mine", nonce: "c1", from: welcome.you });
  });

  it("sends an error only after the broadcasts queued for the socket before it", async () => {
    const room = freshRoom();
    const batched = await join(room, { name: "batched", batch: true });
    const plain = await join(room, { name: "plain" });
    plain.client.say("queued");
    // The plain socket has it, so the room has queued it for the batched one.
    await plain.client.message();
    batched.client.send({ type: "message", text: "", nonce: "e1" });
    const { frames } = await broadcasts(batched.client, 2);
    expect(frames.map((f) => f.type)).toEqual(["join", "message"]);
    expect(await batched.client.next("error")).toEqual({
      type: "error",
      code: "invalid_message",
      message: expect.any(String),
      nonce: "e1",
    });
  });

  it("does not repeat in a batch what a socket's welcome already holds", async () => {
    const room = freshRoom();
    const watcher = await join(room, { batch: true });
    const talker = await join(room);
    // Queue a message, then connect while it may still wait for the flush.
    talker.client.say("queued");
    const late = await join(room, { batch: true });
    talker.client.say("after");
    const inHistory = late.welcome.history.map((m) => m.text);
    const rest = await broadcasts(late.client, inHistory.includes("queued") ? 1 : 2);
    const seen = [...inHistory, ...rest.frames.flatMap((f) => (f.type === "message" ? [f.text] : []))];
    expect(seen).toEqual(["queued", "after"]);
    await late.client.quiet();
    // The watcher got everything: the talker's join, both messages, the late join.
    const all = await broadcasts(watcher.client, 4);
    expect(all.frames.map((f) => f.type)).toEqual(["join", "message", "join", "message"]);
  });
});

describe("BatchQueue", () => {
  const sockets = () => {
    const [a, b] = Object.values(new WebSocketPair());
    const [c] = Object.values(new WebSocketPair());
    return [a!, b!, c!] as const;
  };

  it("gives everyone one shared batch, minus what a socket was excepted from or already saw", () => {
    const [a, b, c] = sockets();
    const queue = new BatchQueue();
    expect(queue.empty).toBe(true);
    queue.push('{"n":1}');
    queue.push('{"n":2}', b);
    queue.start(c);
    queue.push('{"n":3}');
    const batchFor = queue.drain();
    expect(queue.empty).toBe(true);
    expect(batchFor(a)).toBe('{"type":"batch","frames":[{"n":1},{"n":2},{"n":3}]}');
    expect(batchFor(b)).toBe('{"type":"batch","frames":[{"n":1},{"n":3}]}');
    expect(batchFor(c)).toBe('{"type":"batch","frames":[{"n":3}]}');
    // A fresh window forgets who started when.
    queue.push('{"n":4}');
    expect(queue.drain()(c)).toBe('{"type":"batch","frames":[{"n":4}]}');
  });

  it("has nothing for a socket that only its own frames were queued for", () => {
    const [a] = sockets();
    const queue = new BatchQueue();
    queue.push('{"n":1}', a);
    expect(queue.drain()(a)).toBeNull();
  });
});
