// Secrets are not in wrangler.toml, so `wrangler types` cannot see them. All
// are optional: without SESSION_SECRET a development key signs tokens, without
// PUBLISH_TOKEN the HTTP publish endpoint is off, without AUTH_JWT_SECRET
// HS256 host JWTs are refused, without ADMIN_TOKEN the moderation API takes
// only a moderator's JWT.
interface Env {
  SESSION_SECRET?: string;
  PUBLISH_TOKEN?: string;
  AUTH_JWT_SECRET?: string;
  ADMIN_TOKEN?: string;
}
declare namespace Cloudflare {
  interface Env {
    SESSION_SECRET?: string;
    PUBLISH_TOKEN?: string;
    AUTH_JWT_SECRET?: string;
    ADMIN_TOKEN?: string;
  }
}
