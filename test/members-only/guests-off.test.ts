// GUESTS=off (vitest.config.ts): only verified users get in.

import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { verifiedUserId } from "../../src/auth.ts";
import { Client, freshRoom, request, upgradeHeaders } from "../helpers.ts";
import { AUDIENCE, ISSUER, JWT_SECRET } from "../identity/keys.ts";

describe("GUESTS=off", () => {
  it("refuses a guest's upgrade with 401, with or without a session token, and admits a verified user", async () => {
    const room = freshRoom();
    for (const qs of ["", "?name=gus", "?token=u_000000000000000000000000.x"]) {
      const res = await request(`/chat/${room}${qs}`, { headers: upgradeHeaders() });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 401,
        body: { error: "unauthorized", message: "this chat admits signed-in users only" },
      });
    }
    const iat = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ name: "Alice" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("alice")
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const res = await request(`/chat/${room}?auth=${jwt}`, { headers: upgradeHeaders() });
    expect(res.status).toBe(101);
    const welcome = await new Client(res.webSocket!).welcome();
    expect(welcome.you).toEqual({ id: await verifiedUserId("alice"), name: "Alice", verified: true, roles: [] });
  });
});
