// The page with ALLOWED_ORIGINS = "https://host.example, http://127.0.0.1:8080,https://bad.example/path".

import { describe, expect, it } from "vitest";
import { request } from "../helpers.ts";
import { pageHeaders } from "../page-helpers.ts";

const CSP =
  "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors https://host.example http://127.0.0.1:8080";

describe("the page with a list of ALLOWED_ORIGINS", () => {
  it("may be framed by exactly the listed origins, which the meta tag names; an entry that is no origin is left out", async () => {
    expect(await pageHeaders("/")).toEqual({
      status: 200,
      csp: CSP,
      nosniff: "nosniff",
      referrer: "no-referrer",
      etag: null,
      meta: ["https://host.example http://127.0.0.1:8080"],
    });
  });

  it("/index.html (the assets answer it with a redirect to /) carries the same headers", async () => {
    const res = await request("/index.html", { redirect: "manual" });
    expect([
      res.headers.get("Content-Security-Policy"),
      res.headers.get("X-Content-Type-Options"),
      res.headers.get("Referrer-Policy"),
    ]).toEqual([CSP, "nosniff", "no-referrer"]);
  });

  it("the other files keep the static headers: they are no page to frame", async () => {
    const res = await request("/js/app.js");
    expect(res.headers.get("Content-Security-Policy")?.endsWith("; frame-ancestors 'none'")).toBe(true);
  });
});
