// The chat page's own headers. Static files take theirs from public/_headers,
// but the page's frame-ancestors follows ALLOWED_ORIGINS, a setting, so the
// page (`/`, `/index.html`: wrangler.toml's run_worker_first) comes through
// the Worker, which sets every security header itself (_headers does not
// apply to a response the Worker makes) and tells the page which parents
// may hand it a JWT over postMessage.

import type { Config } from "./config.ts";

/**
 * The Content-Security-Policy of every file, without frame-ancestors. CSP
 * Level 3 lets 'self' match ws: and wss: on the same host, so connect-src
 * 'self' covers the chat's socket. Keep in step with public/_headers.
 */
export const BASE_CSP =
  "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/** The name of the `<meta>` that lists the origins the page accepts a host JWT from (docs/PROTOCOL.md). */
export const ORIGINS_META = "edge-chat-allowed-origins";

// Scheme, host (a name, IPv4 or [IPv6]) and port: no character that means
// anything in a CSP or an HTML attribute.
const ORIGIN = /^https?:\/\/[a-z0-9.:[\]-]+$/;

/**
 * The ALLOWED_ORIGINS entries that are origins exactly as a browser spells
 * them (`https://host.example`, `http://127.0.0.1:8080`): anything else
 * (a path, a trailing slash, upper case, a `;`) could never equal an
 * `Origin` header and, copied into a CSP, could add a directive of its own.
 * `"*"` stays `"*"`: any site may embed the chat.
 */
export function embeddingOrigins(allowed: Config["allowedOrigins"]): string[] | "*" {
  if (allowed === "*") return "*";
  return [...allowed].filter((o) => ORIGIN.test(o) && URL.canParse(o) && new URL(o).origin === o);
}

/** frame-ancestors for these origins: nobody ('none') when there are none. */
export function frameAncestors(origins: string[] | "*"): string {
  if (origins === "*") return "frame-ancestors *";
  return origins.length === 0 ? "frame-ancestors 'none'" : `frame-ancestors ${origins.join(" ")}`;
}

/**
 * The page from the static assets, with its headers and the meta tag. The
 * conditional headers are dropped on the way to the assets and the ETag on
 * the way back: the body depends on ALLOWED_ORIGINS as well as the file, so
 * a `304` for the file could keep a stale list of parents in the browser.
 */
export async function servePage(request: Request, assets: Fetcher, config: Config): Promise<Response> {
  const headers = new Headers(request.headers);
  headers.delete("If-None-Match");
  headers.delete("If-Modified-Since");
  const file = await assets.fetch(new Request(request.url, { method: request.method, headers, redirect: "manual" }));
  const origins = embeddingOrigins(config.allowedOrigins);
  const content = origins === "*" ? "*" : origins.join(" ");
  const html = file.headers.get("Content-Type")?.startsWith("text/html") === true;
  const body = html
    ? new HTMLRewriter()
        .on("head", {
          element(head) {
            // The origins passed ORIGIN: nothing in them needs escaping.
            head.prepend(`<meta name="${ORIGINS_META}" content="${content}">`, { html: true });
          },
        })
        .transform(file).body
    : file.body;
  const response = new Response(body, file);
  response.headers.delete("ETag");
  response.headers.set("Cache-Control", "no-cache");
  response.headers.set("Content-Security-Policy", `${BASE_CSP}; ${frameAncestors(origins)}`);
  response.headers.set("X-Content-Type-Options", "nosniff");
  response.headers.set("Referrer-Policy", "no-referrer");
  return response;
}
