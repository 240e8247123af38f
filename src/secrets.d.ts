// Secrets are not in wrangler.toml, so `wrangler types` cannot see them. Both
// are optional: without SESSION_SECRET a development key signs tokens, without
// PUBLISH_TOKEN the HTTP publish endpoint is off.
interface Env {
  SESSION_SECRET?: string;
  PUBLISH_TOKEN?: string;
}
declare namespace Cloudflare {
  interface Env {
    SESSION_SECRET?: string;
    PUBLISH_TOKEN?: string;
  }
}
