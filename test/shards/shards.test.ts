// A large room in workerd (docs/LARGE-ROOMS.md), with SHARD_SIZE 3: the room
// holds three sockets itself and hands the next ones to its parts
// (`${room}/1`, `${room}/2`, …), which it dials. Clients must not be able to
// tell: one order, every message once, the sender's nonce, exact resume.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Message, ServerFrame, WelcomeFrame } from "../../src/protocol.ts";
import type { RoomPart } from "../../src/part.ts";
import type { ChatRoom } from "../../src/room.ts";
import { freshIp, freshRoom, join, request, roomStub, upgradeHeaders, type Client, type Closed } from "../helpers.ts";
import { ADMIN, api, joinAs } from "../moderation/support.ts";

/** The next `n` messages this client gets, whatever presence frames come between. */
async function messages(client: Client, n: number): Promise<Message[]> {
  const got: Message[] = [];
  while (got.length < n) {
    const frame: ServerFrame = await client.next(`message ${got.length + 1} of ${n}`);
    if (frame.type === "message") got.push(frame);
    else if (frame.type === "batch") for (const f of frame.frames) if (f.type === "message") got.push(f);
  }
  return got;
}

/** Joins `count` clients one after another: the first three stay in the room, the rest go to parts. */
async function crowd(room: string, count: number): Promise<{ client: Client; welcome: WelcomeFrame }[]> {
  const joined: { client: Client; welcome: WelcomeFrame }[] = [];
  for (let i = 0; i < count; i++) joined.push(await join(room, { name: `c${i + 1}` }));
  return joined;
}

/**
 * Resets an object as a crash or a deploy would: its memory and its sockets
 * go. (evictDurableObject waits for an object with no work in flight, and a
 * sharded room and its parts always have a timer running.)
 */
async function restart(stub: DurableObjectStub<Rpc.DurableObjectBranded | undefined>): Promise<void> {
  await expect(
    runInDurableObject(stub, (_: unknown, state: DurableObjectState) => state.abort("restart")),
  ).rejects.toThrow();
}

const summary = (list: Message[]) => list.map((m) => `${m.id}:${m.text}`);

/** How `client`'s socket closes, failing with `what` if it does not within 10 s. */
function closing(client: Client, what: string): Promise<Closed> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`expected ${what} to close within 10 s`)), 10_000);
  });
  return Promise.race([client.closed, late]).finally(() => clearTimeout(timer));
}

/** The next frame that is not presence (join, leave, a count or list). */
async function nextNotPresence(client: Client, what: string): Promise<ServerFrame> {
  for (;;) {
    const frame = await client.next(what);
    if (frame.type !== "join" && frame.type !== "leave" && frame.type !== "presence") return frame;
  }
}

/**
 * Runs `act` on the room's instance while its part `${room}/1` has not
 * attached (the room restarted since): what `act` does reaches that part only
 * through the sync of its next attach. (The part asks to be dialled every
 * 250 ms; were it back already, the test would say so rather than pass.)
 */
async function beforeReattach(room: string, act: (instance: ChatRoom) => void): Promise<void> {
  await runInDurableObject(roomStub(room), (instance: ChatRoom) => {
    expect(instance.shards().parts.map((p) => p.part)).toEqual([room]);
    act(instance);
  });
}

describe("a room over several Durable Objects", () => {
  it("puts every message from every part into one order that every client sees", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 7);
    // Every welcome carries the count, the room's own and the parts' alike.
    expect(joined.map((j) => j.welcome.onlineCount)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Above PRESENCE_LIMIT (4) a welcome lists the newcomer and its own part's users.
    expect(joined[6]?.welcome.online.map((u) => u.name)).toEqual(["c7"]);
    expect(joined[3]?.welcome.online.map((u) => u.name).sort()).toEqual(["c1", "c2", "c3", "c4"]);
    for (const [i, { client }] of joined.entries()) client.say(`from c${i + 1}`, `n${i + 1}`);
    const seen = await Promise.all(joined.map(({ client }) => messages(client, 7)));
    const first = seen[0] ?? [];
    expect(first.map((m) => m.id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(first.map((m) => m.text))).toEqual(new Set(joined.map((_, i) => `from c${i + 1}`)));
    for (const list of seen) expect(summary(list)).toEqual(summary(first));
    // Each sender's own message carries its nonce.
    joined.forEach((_, i) => {
      const own = first.find((m) => m.text === `from c${i + 1}`);
      expect(own?.nonce).toBe(`n${i + 1}`);
      expect(own?.from.name).toBe(`c${i + 1}`);
    });
  });

  it("gives a client that joins a part mid-stream every message exactly once", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 4);
    const talker = joined[0]!.client;
    for (let i = 1; i <= 5; i++) talker.say(`m${i}`);
    const late = join(room, { name: "late" });
    for (let i = 6; i <= 10; i++) talker.say(`m${i}`);
    const { client, welcome } = await late;
    expect(welcome.onlineCount).toBe(5);
    const history = welcome.history.map((m) => m.id);
    const live = (await messages(client, 10 - history.length)).map((m) => m.id);
    expect([...history, ...live]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("resumes exactly on another part, with no false gap", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 6);
    const mover = joined[3]!.client;
    joined[0]!.client.say("one");
    joined[0]!.client.say("two");
    const seen = await messages(mover, 2);
    expect(seen.map((m) => m.id)).toEqual([1, 2]);
    mover.close();
    // Fill the mover's old part again, so the resume lands on the next one.
    await join(room, { name: "filler" });
    joined[1]!.client.say("three");
    const { client, welcome } = await join(room, { after: 2, name: "mover" });
    expect(welcome.onlineCount).toBe(7);
    expect(welcome.gap).toBe(false);
    const rest = [...welcome.history, ...(await messages(client, 1 - welcome.history.length))];
    expect(summary(rest)).toEqual(["3:three"]);
  });

  it("answers a resume beyond the room's last id with gap, on a part", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    joined[0]!.client.say("only");
    await messages(joined[0]!.client, 1);
    const { welcome } = await join(room, { after: 99 });
    expect(welcome.gap).toBe(true);
    expect(welcome.history.map((m) => m.text)).toEqual(["only"]);
  });

  it("goes on through an eviction of the room: parts re-attach to a new sequencer, ids continue", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 5);
    const [own, , , onPart, alsoOnPart] = joined.map((j) => j.client);
    own!.say("before");
    expect(summary(await messages(onPart!, 1))).toEqual(["1:before"]);
    await messages(alsoOnPart!, 1);
    await restart(roomStub(room));
    expect((await own!.closed).code).toBe(1006);
    // The part's clients stay connected; the part asks the restarted room to
    // dial it again, and the next message continues the one order.
    onPart!.say("after", "n-after");
    const after = await messages(onPart!, 1);
    expect(after.map((m) => [m.id, m.text, m.nonce])).toEqual([[2, "after", "n-after"]]);
    expect(summary(await messages(alsoOnPart!, 1))).toEqual(["2:after"]);
    const back = await join(room, { after: 1, name: "own again" });
    expect(back.welcome.gap).toBe(false);
    expect(summary(back.welcome.history)).toEqual(["2:after"]);
  });

  it("repairs event frames the link lost, the last one too, and drops one it delivered twice", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 4);
    const talker = joined[0]!.client;
    const onPart = joined[3]!.client;
    // The part's handler for the link loses the frames of the first and the
    // last message (only a beat tells of that one) and gets the frame of the
    // second one twice, as a faulty network would.
    const faults = { lost: 0, repeated: 0 };
    const lose = new Set(['"text":"one"', '"text":"four"']);
    await runInDurableObject(env.PARTS.get(env.PARTS.idFromName(`${room}/1`)), (part: RoomPart) => {
      const deliver = part.webSocketMessage.bind(part);
      part.webSocketMessage = async (ws, data) => {
        const text = typeof data === "string" ? data : "";
        const lost = [...lose].find((t) => text.includes('"type":"event"') && text.includes(t));
        if (lost !== undefined) {
          lose.delete(lost);
          faults.lost++;
          return;
        }
        await deliver(ws, data);
        if (text.includes('"type":"event"') && text.includes('"text":"two"') && faults.repeated === 0) {
          faults.repeated++;
          await deliver(ws, data);
        }
      };
    });
    talker.say("one");
    talker.say("two");
    talker.say("three");
    expect(summary(await messages(onPart, 3))).toEqual(["1:one", "2:two", "3:three"]);
    talker.say("four");
    expect(summary(await messages(onPart, 1))).toEqual(["4:four"]);
    expect(faults).toEqual({ lost: 2, repeated: 1 });
    talker.say("five");
    expect(summary(await messages(onPart, 1))).toEqual(["5:five"]);
  });

  it("stores once a publish whose frame the link lost and one it delivered twice, from a part", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 4);
    const onRoom = joined[0]!.client;
    const onPart = joined[3]!.client;
    // The part's link to the room loses the publish of "up one" and carries
    // the publish of "up two" twice.
    const faults = { lost: 0, repeated: 0 };
    await runInDurableObject(
      env.PARTS.get(env.PARTS.idFromName(`${room}/1`)),
      (_: RoomPart, state: DurableObjectState) => {
        const [link] = state.getWebSockets("link");
        if (link === undefined) throw new Error("the part has no link");
        const send = link.send.bind(link);
        link.send = (data) => {
          const text = typeof data === "string" ? data : "";
          if (text.includes('"up one"') && faults.lost === 0) {
            faults.lost++;
            return;
          }
          send(data);
          if (text.includes('"up two"') && faults.repeated === 0) {
            faults.repeated++;
            send(data);
          }
        };
      },
    );
    onPart.say("up one", "u1");
    onPart.say("up two", "u2");
    const seen = await messages(onRoom, 2);
    expect(seen.map((m) => m.text)).toEqual(["up one", "up two"]);
    expect(faults).toEqual({ lost: 1, repeated: 1 });
    const echoes = await messages(onPart, 2);
    expect(echoes.map((m) => `${m.id}:${m.text}:${m.nonce}`)).toEqual(["1:up one:u1", "2:up two:u2"]);
    onRoom.say("after");
    expect(summary(await messages(onPart, 1))).toEqual(["3:after"]);
  });

  it("lets the clients of an evicted part resume on another object with nothing lost", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 5);
    const talker = joined[0]!.client;
    const onPart = joined[3]!.client;
    talker.say("one");
    await messages(onPart, 1);
    await restart(env.PARTS.get(env.PARTS.idFromName(`${room}/1`)));
    expect((await onPart.closed).code).toBe(1006);
    talker.say("two");
    const back = await join(room, { after: 1, name: "back" });
    const rest = [...back.welcome.history, ...(await messages(back.client, 1 - back.welcome.history.length))];
    expect(back.welcome.gap).toBe(false);
    expect(summary(rest)).toEqual(["2:two"]);
  });

  it("turns presence into counts above PRESENCE_LIMIT and back into the list, on the room and on parts", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 4);
    const own = joined[0]!.client;
    const onPart = joined[3]!.client;
    // own saw c2, c3, c4 join; onPart joined last.
    for (let i = 2; i <= 4; i++)
      expect(await own.next(`c${i}'s join`)).toMatchObject({ type: "join", user: { name: `c${i}` } });
    const fifth = await join(room, { name: "c5" });
    expect(fifth.welcome.onlineCount).toBe(5);
    expect(await own.next("the count")).toEqual({ type: "presence", count: 5 });
    expect(await onPart.next("the count")).toEqual({ type: "presence", count: 5 });
    fifth.client.close();
    const names = ["c1", "c2", "c3", "c4"];
    for (const client of [own, onPart]) {
      const frame = await client.next("the list");
      expect(
        frame.type === "presence" ? { count: frame.count, names: frame.online?.map((u) => u.name).sort() } : frame,
      ).toEqual({ count: 4, names });
    }
    joined[1]!.client.close();
    expect(await onPart.next("c2's leave")).toMatchObject({ type: "leave", user: { name: "c2" } });
  });

  it("gives batch clients on parts the same order, in batches", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 4);
    const batcher = await join(room, { name: "batcher", batch: true });
    expect(batcher.welcome.onlineCount).toBe(5);
    for (const [i, { client }] of joined.entries()) client.say(`t${i + 1}`);
    batcher.client.say("t5", "mine");
    const seen = await messages(batcher.client, 5);
    const reference = await messages(joined[0]!.client, 5);
    expect(summary(seen)).toEqual(summary(reference));
    expect(seen.find((m) => m.text === "t5")?.nonce).toBe("mine");
  });

  it("grows into parts as it fills and becomes one object again as it empties", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 7);
    const stub = roomStub(room);
    expect(await stub.shards()).toEqual({
      shards: 3,
      sequencing: true,
      parts: [
        { part: room, connections: 3 },
        { part: `${room}/1`, connections: 3 },
        { part: `${room}/2`, connections: 1 },
      ],
    });
    for (const { client } of joined.slice(2)) client.close();
    // The parts are let go once they have been empty for a while.
    for (let tries = 0; (await stub.shards()).sequencing; tries++) {
      if (tries > 100) throw new Error("the room never let its empty parts go");
      await scheduler.wait(100);
    }
    expect(await stub.shards()).toEqual({ shards: 1, sequencing: false, parts: [{ part: room, connections: 2 }] });
    // A single room again: a welcome exactly as a small room gives it.
    const next = await join(room, { name: "next" });
    expect(next.welcome.onlineCount).toBe(3);
    expect(next.welcome.online.map((u) => u.name).sort()).toEqual(["c1", "c2", "next"]);
  });

  it("refuses a banned user before handing the connection to a part, and counts every part in stats", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const guest = await join(room, { name: "guest" });
    expect(guest.welcome.onlineCount).toBe(4);
    const stats = await api(room, "/stats");
    expect(stats.status).toBe(200);
    expect(await stats.json()).toMatchObject({
      connections: 4,
      users: 4,
      shards: 2,
      parts: [
        { part: room, connections: 3 },
        { part: `${room}/1`, connections: 1 },
      ],
    });
    const banned = await api(room, `/bans/${guest.welcome.you.id}`, {
      method: "PUT",
      body: JSON.stringify({ minutes: 5 }),
    });
    expect(banned.status).toBe(204);
    const again = await request(`/chat/${room}?token=${encodeURIComponent(guest.welcome.token)}`, {
      headers: upgradeHeaders(),
    });
    expect(again.status).toBe(403);
    expect(await again.json()).toMatchObject({ error: "banned" });
  });

  it("carries moderation to parts: tombstones, slow mode and bans", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    const author = joined[0]!.client;
    const onPart = await join(room, { name: "on a part" });
    author.say("regret");
    const [said] = await messages(onPart.client, 1);
    expect((await api(room, `/messages/${said!.id}`, { method: "DELETE" })).status).toBe(204);
    expect(await onPart.client.next("the tombstone")).toMatchObject({ type: "delete", id: said!.id });
    expect((await api(room, "/settings", { method: "PATCH", body: JSON.stringify({ slowMode: 60 }) })).status).toBe(
      200,
    );
    expect(await onPart.client.next("the settings")).toEqual({ type: "settings", slowMode: 60 });
    onPart.client.say("first", "s1");
    expect((await messages(onPart.client, 1))[0]?.nonce).toBe("s1");
    onPart.client.say("second", "s2");
    expect(await onPart.client.next("slow mode")).toMatchObject({ type: "error", code: "slow_mode", nonce: "s2" });
    // A resume on the part shows the tombstone in its place.
    const later = await join(room, { after: 0, name: "later" });
    expect(later.welcome.history.map((m) => [m.id, m.text, m.deleted])).toEqual([
      [1, "", true],
      [2, "first", undefined],
    ]);
    const banned = await api(room, `/bans/${onPart.welcome.you.id}`, {
      method: "PUT",
      body: JSON.stringify({ reason: "spam" }),
    });
    expect(banned.status).toBe(204);
    expect((await onPart.client.closed).code).toBe(4003);
  });

  it("closes a part's sockets of a user banned while the part had no link, and stores nothing they sent meanwhile", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const idle = await join(room, { name: "idle" });
    const talker = await join(room, { name: "talker" });
    const watcher = await join(room, { name: "watcher" });
    expect((await roomStub(room).shards()).parts).toEqual([
      { part: room, connections: 3 },
      { part: `${room}/1`, connections: 3 },
    ]);
    await restart(roomStub(room));
    // Sent while the part has no link: it waits in the part for the room.
    // The ack's refusal comes from the part itself, after the message.
    talker.client.say("after the ban", "late");
    talker.client.send({ type: "ack", id: 99 });
    expect(await talker.client.next("the part's refusal of the ack")).toMatchObject({
      type: "error",
      code: "invalid_message",
    });
    await beforeReattach(room, (instance) => {
      expect(instance.banUser(room, idle.welcome.you.id, { reason: "spam" }, ADMIN)).toBe(true);
      expect(instance.banUser(room, talker.welcome.you.id, {}, ADMIN)).toBe(true);
    });
    // As on one object: closed with 4003 and the ban's reason, and the
    // message never stored.
    expect(await closing(idle.client, "the idle banned socket")).toEqual({ code: 4003, reason: "banned: spam" });
    expect(await closing(talker.client, "the banned talker")).toEqual({ code: 4003, reason: "banned" });
    watcher.client.say("next");
    expect(summary(await messages(watcher.client, 1))).toEqual(["1:next"]);
  });

  it("bans a guest on a part by its address too: the room's and every part's guests from there close, and are refused after", async () => {
    const room = freshRoom();
    const from = { "CF-Connecting-IP": freshIp() };
    await crowd(room, 2);
    const onRoom = await join(room, { name: "neighbour on the room", headers: from });
    const guest = await join(room, { name: "guest", headers: from });
    const onPart = await join(room, { name: "neighbour on the part", headers: from });
    const elsewhere = await join(room, { name: "from elsewhere" });
    expect((await roomStub(room).shards()).parts).toEqual([
      { part: room, connections: 3 },
      { part: `${room}/1`, connections: 3 },
    ]);
    expect((await api(room, `/bans/${guest.welcome.you.id}`, { method: "PUT", body: "{}" })).status).toBe(204);
    for (const [client, what] of [
      [guest.client, "the banned guest"],
      [onRoom.client, "the guest from its address on the room"],
      [onPart.client, "the guest from its address on the part"],
    ] as const) {
      expect(await closing(client, what)).toEqual({ code: 4003, reason: "banned" });
    }
    const again = await request(`/chat/${room}?name=another`, { headers: upgradeHeaders(from) });
    expect(again.status).toBe(403);
    expect(await again.json()).toMatchObject({ error: "banned" });
    elsewhere.client.say("still here");
    expect(summary(await messages(elsewhere.client, 1))).toEqual(["1:still here"]);
  });

  it("tells a part's clients once of a delete made while the part had no link", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const reader = await join(room, { name: "reader" });
    reader.client.say("regret");
    reader.client.say("keep");
    expect(summary(await messages(reader.client, 2))).toEqual(["1:regret", "2:keep"]);
    await restart(roomStub(room));
    await beforeReattach(room, (instance) => expect(instance.deleteMessage(room, 1, ADMIN)).toBe("deleted"));
    expect(await nextNotPresence(reader.client, "the delete")).toEqual({
      type: "delete",
      id: 1,
      by: ADMIN,
      ts: expect.any(Number),
    });
    reader.client.say("next");
    expect(await nextNotPresence(reader.client, "the next message")).toMatchObject({ type: "message", id: 3 });
  });

  it("welcomes a client on a part with the room's slow mode, also once the part or the room restarted", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    const small = joined[0]!.welcome.limits;
    expect(small.slowMode).toBeUndefined();
    const slowed = { ...small, slowMode: 30 };
    const moderator = await joinAs(room, "mod", ["moderator"]);
    moderator.send({ type: "settings", slowMode: 30 });
    expect(await moderator.next("the settings")).toEqual({ type: "settings", slowMode: 30 });
    const onPart = await join(room, { name: "on a part" });
    expect(onPart.welcome.limits).toEqual(slowed);
    // A new instance of the part knows nothing of the settings event it
    // missed: its attach's sync must tell it.
    await restart(env.PARTS.get(env.PARTS.idFromName(`${room}/1`)));
    expect((await onPart.client.closed).code).toBe(1006);
    const afterPart = await join(room, { name: "after the part's restart" });
    expect(afterPart.welcome.limits).toEqual(slowed);
    expect((await roomStub(room).shards()).parts).toEqual([
      { part: room, connections: 3 },
      { part: `${room}/1`, connections: 1 },
    ]);
    // The room restarts under the part: its own clients come back, the next
    // lands on the part again, and slow mode is still the stored one.
    await restart(roomStub(room));
    const back = await crowd(room, 3);
    expect(back.map((j) => j.welcome.limits)).toEqual([slowed, slowed, slowed]);
    const afterRoom = await join(room, { name: "after the room's restart" });
    expect(afterRoom.welcome.limits).toEqual(slowed);
    // Off again: absent from a part's welcome, as from the room's.
    expect((await api(room, "/settings", { method: "PATCH", body: JSON.stringify({ slowMode: 0 }) })).status).toBe(200);
    let off = await afterPart.client.next("slow mode off");
    while (off.type !== "settings") off = await afterPart.client.next("slow mode off");
    expect(off).toEqual({ type: "settings", slowMode: 0 });
    expect((await join(room, { name: "unslowed" })).welcome.limits).toEqual(small);
    expect((await roomStub(room).shards()).parts).toEqual([
      { part: room, connections: 3 },
      { part: `${room}/1`, connections: 3 },
    ]);
  });

  it("closes a reader on a part that falls more than a history behind its ack, and refuses acks that name nothing", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    const talker = joined[0]!.client;
    const reader = await join(room, { name: "reader" });
    talker.say("m1");
    expect((await messages(reader.client, 1))[0]?.id).toBe(1);
    reader.client.send({ type: "ack", id: 99 });
    expect(await reader.client.next("the refused ack")).toMatchObject({ type: "error", code: "invalid_message" });
    reader.client.send({ type: "ack", id: 1 });
    for (let i = 2; i <= 7; i++) talker.say(`m${i}`);
    // HISTORY_SIZE is 5: message 7 is more than 5 past the ack of 1.
    const closed = await reader.client.closed;
    expect(closed).toEqual({ code: 1008, reason: "too far behind: reconnect with after" });
  });

  it("acts on moderation frames sent from a part's sockets, with the room's rules", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    const watcher = joined[0]!.client;
    const author = await join(room, { name: "author" });
    const moderator = await joinAs(room, "mod", ["moderator"]);
    author.client.say("oops");
    const [oops] = await messages(author.client, 1);
    await messages(watcher, 1);
    author.client.send({ type: "ban", user: "someone", nonce: "b1" });
    expect(await author.client.next("the refusal")).toMatchObject({ type: "error", code: "forbidden", nonce: "b1" });
    author.client.send({ type: "delete", id: 99, nonce: "d0" });
    expect(await author.client.next("not found")).toMatchObject({ type: "error", code: "not_found", nonce: "d0" });
    author.client.send({ type: "delete", id: oops!.id, nonce: "d1" });
    expect(await watcher.next("the tombstone")).toMatchObject({ type: "delete", id: oops!.id, by: { name: "author" } });
    moderator.send({ type: "ban", user: author.welcome.you.id, reason: "spam" });
    expect((await author.client.closed).code).toBe(4003);
  });

  it("holds one address to its message bucket across the sockets it has on parts", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const headers = { "CF-Connecting-IP": freshIp() };
    const a = await join(room, { name: "a", headers });
    const b = await join(room, { name: "b", headers });
    for (let i = 1; i <= 7; i++) {
      a.client.say(`a${i}`, `a${i}`);
      b.client.say(`b${i}`, `b${i}`);
    }
    // 14 messages, 12 in the address's bucket: two refused, whoever sent them.
    const answers = async (client: Client) => {
      const mine = new Map<string, string>();
      while (mine.size < 7) {
        const frame = await client.next("an answer");
        if (frame.type === "error" && frame.nonce !== undefined) mine.set(frame.nonce, frame.code);
        if (
          frame.type === "message" &&
          frame.nonce !== undefined &&
          frame.from.name === (client === a.client ? "a" : "b")
        )
          mine.set(frame.nonce, "stored");
      }
      return [...mine.values()];
    };
    const all = [...(await answers(a.client)), ...(await answers(b.client))];
    expect(all.filter((x) => x === "rate_limited")).toHaveLength(2);
    expect(all.filter((x) => x === "stored")).toHaveLength(12);
  });

  it("closes a part's socket at its 20th error and stores nothing it sent after, as one object does", async () => {
    const room = freshRoom();
    const joined = await crowd(room, 3);
    const bystander = joined[0]!.client;
    const flooder = await join(room, { name: "flooder" });
    // Twenty frames only the room can refuse (it keeps no message 99), then
    // a message it would take: the 20th refusal closes the socket, so the
    // message must never be stored, however fast the frames came.
    for (let i = 1; i <= 20; i++) flooder.client.send({ type: "delete", id: 99, nonce: `d${i}` });
    flooder.client.say("after the 20th error", "late");
    const errors: string[] = [];
    for (let i = 1; i <= 20; i++) {
      const frame = await flooder.client.next(`error ${i} of 20`);
      errors.push(frame.type === "error" ? `${frame.code} ${frame.nonce}` : frame.type);
    }
    expect(errors).toEqual(Array.from({ length: 20 }, (_, i) => `not_found d${i + 1}`));
    expect(await flooder.client.closed).toEqual({ code: 1008, reason: "too many errors" });
    bystander.say("marker");
    expect(summary(await messages(bystander, 1))).toEqual(["1:marker"]);
    const later = await join(room, { after: 0, name: "later" });
    expect(summary(later.welcome.history)).toEqual(["1:marker"]);
  });

  it("reads the frames a part's socket sent while its answers were owed, in order, once they come", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const sender = await join(room, { name: "sender", headers: { "CF-Connecting-IP": freshIp() } });
    // 15 refusals owed: from the 6th message on, a frame waits until answers
    // come back (15 + 5 owed could be 20 strikes). Nothing is lost or reordered.
    for (let i = 1; i <= 15; i++) sender.client.send({ type: "delete", id: 99, nonce: `d${i}` });
    for (let i = 1; i <= 8; i++) sender.client.say(`m${i}`, `m${i}`);
    const answers: string[] = [];
    for (let i = 1; i <= 23; i++) {
      const frame = await sender.client.next(`answer ${i} of 23`);
      if (frame.type === "error") answers.push(`${frame.code} ${frame.nonce}`);
      else if (frame.type === "message") answers.push(`${frame.id} ${frame.nonce}`);
      else i--;
    }
    expect(answers).toEqual([
      ...Array.from({ length: 15 }, (_, i) => `not_found d${i + 1}`),
      ...Array.from({ length: 8 }, (_, i) => `${i + 1} m${i + 1}`),
    ]);
  });

  it("spreads a storm of connects over parts instead of overfilling one", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const storm = await Promise.all(Array.from({ length: 7 }, (_, i) => join(room, { name: `s${i}` })));
    expect(storm.every((j) => j.welcome.type === "welcome")).toBe(true);
    // Parts report their sockets as they arrive, so the counts settle a
    // moment after the welcomes; no object may ever hold more than SHARD_SIZE.
    await expect
      .poll(async () => {
        const counts = (await roomStub(room).shards()).parts.map((p) => p.connections);
        return { over: counts.filter((c) => c > 3), total: counts.reduce((a, b) => a + b, 0) };
      })
      .toEqual({ over: [], total: 10 });
  });
});
