// Hardening at the edge (issue 8): what a hostile client can do before or
// around the room.

import { describe, expect, it } from "vitest";
import { freshRoom, join } from "./helpers.ts";

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("token spelling", () => {
  it("refuses a token whose spare bits are set: a new id is issued", async () => {
    const room = freshRoom();
    const first = await join(room);
    const [id, sig = ""] = first.welcome.token.split(".");
    const last = BASE64URL.indexOf(sig.at(-1) ?? "");
    const respelled = `${id}.${sig.slice(0, -1)}${BASE64URL[last ^ 0b11]}`;
    const canonical = await join(room, { token: first.welcome.token });
    expect(canonical.welcome.you.id).toBe(first.welcome.you.id);
    const other = await join(room, { token: respelled });
    expect(other.welcome.you.id).toMatch(/^u_[0-9a-f]{24}$/);
    expect(other.welcome.you.id).not.toBe(first.welcome.you.id);
    for (const c of [first, canonical, other]) c.client.close();
  });
});
