// Mints the HS256 JWT a host application would sign for one of its users.
// No Node APIs here: the CLI (token.ts) runs it under Node, the tests in workerd.

import { SignJWT } from "jose";

export interface MintOptions {
  sub: string;
  name?: string;
  roles: string[];
  rooms: string[];
  minutes: number;
  issuer?: string;
  audience?: string;
}

export async function mintToken(secret: string, options: MintOptions, now: number = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  const claims: Record<string, unknown> = {};
  if (options.name !== undefined) claims.name = options.name;
  if (options.roles.length > 0) claims.roles = options.roles;
  if (options.rooms.length > 0) claims.rooms = options.rooms;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.round(options.minutes * 60));
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
