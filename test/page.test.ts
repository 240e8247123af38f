// The chat page's headers, set by the Worker (src/page.ts). ALLOWED_ORIGINS
// is empty here; test/identity and test/members-only run with a list and `*`.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE_CSP } from "../src/page.ts";
import { pageHeaders } from "./page-helpers.ts";

describe("the page without ALLOWED_ORIGINS", () => {
  it.each(["/", "/?room=ops"])("%s refuses every frame and lists no parent origin", async (path) => {
    expect(await pageHeaders(path)).toEqual({
      status: 200,
      csp: "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      nosniff: "nosniff",
      referrer: "no-referrer",
      etag: null,
      meta: [""],
    });
  });
});

describe("conditional requests for the page", () => {
  it("answers If-None-Match with the whole page: its body depends on a setting, not only on the file", async () => {
    const file = await env.ASSETS.fetch("https://chat.example/");
    const etag = file.headers.get("ETag");
    expect(etag).not.toBeNull();
    expect(await pageHeaders("/", { headers: { "If-None-Match": etag! } })).toMatchObject({
      status: 200,
      etag: null,
      meta: [""],
    });
  });
});

describe("one CSP", () => {
  it("the static files' CSP (public/_headers) is the page's, with frame-ancestors 'none'", async () => {
    const file = await env.ASSETS.fetch("https://chat.example/js/app.js");
    expect(file.headers.get("Content-Security-Policy")).toBe(`${BASE_CSP}; frame-ancestors 'none'`);
  });
});
