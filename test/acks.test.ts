// What an ack costs: one that does not advance, or names a message that does
// not exist, is an error frame and a strike toward 1008.

import { describe, expect, it } from "vitest";
import { freshRoom, join, seed } from "./helpers.ts";

const INVALID = { type: "error", code: "invalid_message", message: expect.any(String) };

describe("acks", () => {
  it("answers an ack that is not above the last one with an error, and the 20th closes the socket with 1008", async () => {
    const room = freshRoom();
    await seed(room, 2);
    const { client } = await join(room);
    client.send({ type: "ack", id: 1 });
    client.send({ type: "ack", id: 2 });
    for (let i = 0; i < 19; i++) client.send({ type: "ack", id: i % 2 === 0 ? 2 : 1 });
    for (let i = 0; i < 19; i++) expect(await client.next(`error ${i + 1}`)).toEqual(INVALID);
    // The two advancing acks drew nothing: the socket is still open after 19 errors.
    client.say("still here");
    expect(await client.message()).toMatchObject({ id: 3, text: "still here" });
    client.send({ type: "ack", id: 2 });
    expect(await client.next("error 20")).toEqual(INVALID);
    expect(await client.closed).toEqual({ code: 1008, reason: "too many errors" });
  });

  it("answers an ack beyond the room's last message with an error, and does not record it", async () => {
    const room = freshRoom();
    await seed(room, 2);
    const { client } = await join(room);
    client.send({ type: "ack", id: 3 });
    expect(await client.next("error")).toEqual(INVALID);
    // Had 3 been recorded, this ack would not advance.
    client.send({ type: "ack", id: 2 });
    client.say("after the acks");
    expect(await client.message()).toMatchObject({ id: 3, text: "after the acks" });
  });

  it("takes a first ack of 0 in an empty room", async () => {
    const { client } = await join(freshRoom());
    client.send({ type: "ack", id: 0 });
    client.say("hello");
    expect(await client.message()).toMatchObject({ id: 1, text: "hello" });
  });
});
