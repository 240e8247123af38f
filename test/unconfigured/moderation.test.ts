// Without ADMIN_TOKEN and without any JWT key (this project sets neither),
// the moderation API does not exist: 404 on every route, whatever the bearer.

import { describe, expect, it } from "vitest";
import { freshRoom, request } from "../helpers.ts";

describe("the moderation API when nothing can authorize it", () => {
  it.each([
    ["DELETE", "/messages/1"],
    ["GET", "/bans"],
    ["PUT", "/bans/u_1"],
    ["DELETE", "/bans/u_1"],
    ["PATCH", "/settings"],
    ["GET", "/stats"],
  ])("answers %s %s with 404", async (method, path) => {
    const res = await request(`/api/rooms/${freshRoom()}${path}`, {
      method,
      headers: { Authorization: "Bearer anything" },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: "not_found",
      message: "moderation over HTTP is not enabled: set ADMIN_TOKEN or a JWT key",
    });
  });
});
