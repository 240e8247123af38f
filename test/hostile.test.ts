// Hostile clients: whatever one socket sends, the room answers it with the
// right error or close code, others see nothing of it, and stored history
// stays as it was.

import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ErrorCode, Message } from "../src/protocol.ts";
import type { ChatRoom } from "../src/room.ts";
import { seeded as random } from "../tools/harness/random.ts";
import { freshRoom, join, request, roomStub, seed, upgradeHeaders } from "./helpers.ts";

async function storedTexts(room: string): Promise<string[]> {
  const res = await request(`/api/rooms/${room}/messages`);
  const page = (await res.json()) as { messages: { text: string }[] };
  return page.messages.map((m) => m.text);
}

describe("hostile frames", () => {
  it("answers random bytes and invalid UTF-8 in binary frames with `unsupported`", async () => {
    const room = freshRoom();
    const bystander = await join(room);
    const { client } = await join(room);
    await bystander.client.next("join");
    const next = random(1);
    const payloads = [
      new Uint8Array([0xc3, 0x28]),
      new Uint8Array([0xed, 0xa0, 0x80]),
      new Uint8Array([0xff, 0xff, 0xff]),
      Uint8Array.from({ length: 500 }, () => Math.floor(next() * 256)),
      new TextEncoder().encode('{"type":"message","text":"binary JSON"}'),
    ];
    for (const bytes of payloads) client.ws.send(bytes);
    for (let i = 0; i < payloads.length; i++) await client.error("unsupported");
    await bystander.client.quiet();
    expect(await storedTexts(room)).toEqual([]);
  });

  it("answers JSON with huge numbers, odd keys and odd types by the rules", async () => {
    const room = freshRoom();
    const { client, welcome } = await join(room);
    // An answer is an error code, or the text of the message the frame becomes.
    const frames: [string, ErrorCode | { text: string }][] = [
      ['{"type":"message","text":1e999}', "invalid_message"],
      ['{"type":"message","text":"x","nonce":123456789012345678901234567890}', "invalid_message"],
      ['{"type":"message","text":"x","nonce":-0}', "invalid_message"],
      ['{"type":"message","text":["x"]}', "invalid_message"],
      ['{"constructor":{"prototype":{"type":"message"}},"text":"x"}', "unknown_type"],
      ['{"type":"message","text":"x","__proto__":{"type":"nope"}}', { text: "x" }],
      ['{"__proto__":{"type":"message","text":"inherited"}}', "unknown_type"],
      ['{"type":"message","__proto__":{"text":"inherited","nonce":"n1"}}', "invalid_message"],
      [
        '{"type":"message","text":"y","__proto__":{"nonce":"inherited"},"from":{"id":"bot","name":"admin"},"id":1}',
        { text: "y" },
      ],
      ['{"type":"message","type":"nope","text":"x"}', "unknown_type"],
      ['{"type":"toString","text":"x"}', "unknown_type"],
      ["1".repeat(400), "bad_json"],
      ['{"type":"message","text":"x"}garbage', "bad_json"],
      ["\u0000", "bad_json"],
      [
        '{"type":"message","text":"\\u0000\\u0007 escaped control characters are text"}',
        { text: "\u0000\u0007 escaped control characters are text" },
      ],
      ['{"type":"message","text":"raw \u0007 control characters are not JSON"}', "bad_json"],
    ];
    for (const [frame] of frames) client.send(frame);
    const stored: Message[] = [];
    for (const [frame, expected] of frames) {
      const got = await client.next(`answer to ${frame.slice(0, 40)}`);
      if (typeof expected === "string") {
        // Whole frames: no nonce from anywhere but the frame's own field, nothing else carried over.
        expect(got, frame).toEqual({ type: "error", code: expected, message: expect.any(String) });
        continue;
      }
      const message = {
        type: "message",
        id: stored.length + 1,
        ts: expect.any(Number),
        from: welcome.you,
        text: expected.text,
      };
      expect(got, frame).toEqual(message);
      // Only the fields the room builds: a __proto__ key, `from` or `id` from the client never come along.
      expect(Object.keys(got), frame).toEqual(["type", "id", "ts", "from", "text"]);
      stored.push(got as Message);
    }
    const res = await request(`/api/rooms/${room}/messages`);
    expect(await res.json()).toEqual({ room, messages: stored, gap: false });
  });

  it("survives deeply nested JSON", async () => {
    const { client } = await join(freshRoom());
    client.send("[".repeat(8000) + "]".repeat(8000));
    await client.error("bad_json");
    client.send(`{"type":"message","text":"deep","x":${'{"a":'.repeat(1300)}1${"}".repeat(1300)}}`);
    expect((await client.message()).text).toBe("deep");
  });

  it("takes fuzzed frames one by one without losing a stored message or the socket", async () => {
    const room = freshRoom();
    await seed(room, 5);
    const bystander = await join(room);
    const { client } = await join(room);
    await bystander.client.next("join");
    const next = random(42);
    const alphabet = [
      "{",
      "}",
      "[",
      "]",
      '"',
      ":",
      ",",
      "type",
      "message",
      "text",
      "nonce",
      "\\u",
      "\\ud800",
      "1e9",
      "null",
      "x",
      " ",
    ];
    // Under 20, so the connection is never closed for errors.
    for (let i = 0; i < 19; i++) {
      const parts = Array.from(
        { length: 1 + Math.floor(next() * 30) },
        () => alphabet[Math.floor(next() * alphabet.length)],
      );
      client.send(parts.join(""));
    }
    for (let i = 0; i < 19; i++) {
      const frame = await client.next(`answer ${i + 1} to fuzz`);
      // A fuzzed frame may by chance be a valid message; anything else must be an error frame.
      expect(["error", "message"]).toContain(frame.type);
    }
    expect((await storedTexts(room)).slice(0, 5)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  });

  it("closes a connection that floods bad frames after 20 errors, and the room serves others on", async () => {
    const room = freshRoom();
    await seed(room, 2);
    const bystander = await join(room, { name: "bystander" });
    const { client } = await join(room, { name: "flood" });
    await bystander.client.next("join");
    for (let i = 0; i < 500; i++) client.send(i % 2 === 0 ? "{" : '{"type":"message","text":""}');
    expect((await client.closed).code).toBe(1008);
    expect(await bystander.client.next("flood's leave")).toMatchObject({ type: "leave" });
    bystander.client.say("still fine");
    expect((await bystander.client.message()).text).toBe("still fine");
    expect(await storedTexts(room)).toEqual(["m1", "m2", "still fine"]);
  });

  it("takes a burst of thousands of valid frames: the bucket passes 10, and the rest never reach storage", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    for (let i = 0; i < 2000; i++) client.say(`spam ${i}`);
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    const stored = await storedTexts(room);
    expect(stored.length).toBeGreaterThanOrEqual(10);
    // 20 refusals close the socket, so at most 10 + what refilled in the meantime got through.
    expect(stored.length).toBeLessThan(40);
    expect(stored.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `spam ${i}`));
  });
});

describe("restarts", () => {
  it("lets clients resume without loss after the room is reset and their sockets dropped", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const bob = await join(room, { name: "bob" });
    await alice.client.next("bob's join");
    for (let i = 1; i <= 3; i++) {
      alice.client.say(`before ${i}`);
      await alice.client.message();
      await bob.client.message();
    }
    await evictDurableObject(roomStub(room), { webSockets: "close" });
    // The runtime drops the sockets of a room it resets without a close
    // frame, and the room has no say: each client sees 1006 (abnormal
    // closure, never sent on the wire) and reconnects.
    const [a, b] = await Promise.all([alice.client.closed, bob.client.closed]);
    expect(a.code).toBe(1006);
    expect(b.code).toBe(1006);
    // Alice comes back first and talks while Bob is still away.
    const alice2 = await join(room, { name: "alice", token: alice.welcome.token, after: 3 });
    expect(alice2.welcome).toMatchObject({ history: [], gap: false, you: alice.welcome.you });
    alice2.client.say("during");
    expect((await alice2.client.message()).id).toBe(4);
    const bob2 = await join(room, { name: "bob", token: bob.welcome.token, after: 3 });
    expect(bob2.welcome.history.map((m) => [m.id, m.text])).toEqual([[4, "during"]]);
    expect(bob2.welcome.gap).toBe(false);
  });

  it("keeps ids increasing when the object is aborted in the middle of traffic", async () => {
    const room = freshRoom();
    await seed(room, 10);
    await expect(runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.abort("reset"))).rejects.toThrow();
    await seed(room, 1);
    const res = await request(`/api/rooms/${room}/messages?after=9`);
    expect(((await res.json()) as { messages: { id: number; text: string }[] }).messages.map((m) => m.id)).toEqual([
      10, 11,
    ]);
  });
});

describe("names", () => {
  it("turns a name with control, bidirectional or invisible characters or HTML-looking text into the rules' result, never an error", async () => {
    const room = freshRoom();
    const cases: [string, string | RegExp][] = [
      ["<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"],
      ["a\u0000b", /^guest-[a-z0-9]{4}$/],
      ["\u001b[31mred", /^guest-[a-z0-9]{4}$/],
      ["\u0085next", /^guest-[a-z0-9]{4}$/],
      // v1.1: bidirectional controls and invisible characters make a name invalid.
      ["right\u202eleft", /^guest-[a-z0-9]{4}$/],
      ["a\u200bb", /^guest-[a-z0-9]{4}$/],
      ["bot", /^guest-[a-z0-9]{4}$/],
      ["\u{1f469}\u200d\u{1f4bb}", "\u{1f469}\u200d\u{1f4bb}"],
    ];
    for (const [name, expected] of cases) {
      const res = await request(`/chat/${room}?name=${encodeURIComponent(name)}`, { headers: upgradeHeaders() });
      expect(res.status).toBe(101);
      const ws = res.webSocket!;
      ws.accept();
      const welcome = await new Promise<{ you: { name: string } }>((resolve) =>
        ws.addEventListener("message", (e) => resolve(JSON.parse(String(e.data)) as { you: { name: string } }), {
          once: true,
        }),
      );
      if (typeof expected === "string") expect(welcome.you.name).toBe(expected);
      else expect(welcome.you.name).toMatch(expected);
      ws.close(1000);
    }
  });
});
