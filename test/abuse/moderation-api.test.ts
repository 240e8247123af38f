// The moderation API counts toward API_PER_MIN (4 in this project) like the
// rest of the HTTP API, refused calls included, per address.

import { describe, expect, it } from "vitest";
import { freshIp, freshRoom, request } from "../helpers.ts";

describe("the moderation API and API_PER_MIN", () => {
  it("answers 429 with Retry-After once an address has made its calls, whatever the bearer", async () => {
    const room = freshRoom();
    const ip = freshIp();
    const call = (bearer: string, path = "/stats") =>
      request(`/api/rooms/${room}${path}`, { headers: { Authorization: `Bearer ${bearer}`, "CF-Connecting-IP": ip } });
    expect((await call("test-admin-token")).status).toBe(200);
    expect((await call("wrong")).status).toBe(401);
    expect((await call("test-admin-token", "/bans")).status).toBe(200);
    expect((await request(`/api/rooms/${room}/messages`, { headers: { "CF-Connecting-IP": ip } })).status).toBe(200);
    const limited = await call("test-admin-token");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).toBe("15");
    expect(await limited.json()).toEqual({ error: "too_many_requests", message: "at most 4 API requests a minute" });
    // Another address is not affected.
    const other = await request(`/api/rooms/${room}/stats`, {
      headers: { Authorization: "Bearer test-admin-token", "CF-Connecting-IP": freshIp() },
    });
    expect(other.status).toBe(200);
  });
});
