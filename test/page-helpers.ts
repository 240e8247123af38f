import { request } from "./helpers.ts";

/** What the page's response says about framing and embedding. */
export async function pageHeaders(path: string, init: RequestInit = {}) {
  const res = await request(path, init);
  const html = await res.text();
  const meta = [...html.matchAll(/<meta name="edge-chat-allowed-origins" content="([^"]*)">/g)].map((m) => m[1]);
  return {
    status: res.status,
    csp: res.headers.get("Content-Security-Policy"),
    nosniff: res.headers.get("X-Content-Type-Options"),
    referrer: res.headers.get("Referrer-Policy"),
    etag: res.headers.get("ETag"),
    meta,
  };
}
