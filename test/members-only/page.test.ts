// The page with ALLOWED_ORIGINS = "*".

import { describe, expect, it } from "vitest";
import { pageHeaders } from "../page-helpers.ts";

describe("the page with ALLOWED_ORIGINS=*", () => {
  it("may be framed by any site, and says so in the meta tag", async () => {
    expect(await pageHeaders("/")).toMatchObject({
      status: 200,
      csp: "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors *",
      meta: ["*"],
    });
  });
});
