// What the moderation tests share: the project's secrets (vitest.config.ts),
// verified users and moderators with real host JWTs, and a way to restart a
// room.

import { runInDurableObject } from "cloudflare:test";
import { mintToken } from "../../scripts/mint.ts";
import { verifiedUserId } from "../../src/auth.ts";
import type { User } from "../../src/protocol.ts";
import type { ChatRoom, Usage } from "../../src/room.ts";
import { AUDIENCE, ISSUER, JWT_SECRET } from "../identity/keys.ts";
import { Client, request, roomStub, upgradeHeaders } from "../helpers.ts";

export const ADMIN_TOKEN = "test-admin-token";
export const ADMIN: User = { id: "admin", name: "admin" };

/** A host JWT for `sub` (also its name), as a site would mint it with `npm run token`. */
export function hostJwt(sub: string, roles: string[] = []): Promise<string> {
  return mintToken(JWT_SECRET, { sub, name: sub, roles, rooms: [], minutes: 10, issuer: ISSUER, audience: AUDIENCE });
}

/** How others see the verified user `sub`: in `from`, `by`, `join` (roles only ever in its own `you`). */
export async function verifiedUser(sub: string): Promise<User> {
  return { id: await verifiedUserId(sub), name: sub, verified: true };
}

export interface AsOptions {
  /** The client's address (CF-Connecting-IP); a fresh one when absent. */
  ip?: string;
  batch?: boolean;
}

/** Upgrades through the Worker with a host JWT for `sub` in the `auth` parameter. */
export async function upgradeAs(
  room: string,
  sub: string,
  roles: string[] = [],
  { ip, batch = false }: AsOptions = {},
): Promise<Response> {
  const query = new URLSearchParams({ auth: await hostJwt(sub, roles) });
  if (batch) query.set("batch", "1");
  return request(`/chat/${room}?${query}`, {
    headers: upgradeHeaders(ip === undefined ? {} : { "CF-Connecting-IP": ip }),
  });
}

/** Connects the verified user `sub` and reads its welcome. */
export async function joinAs(
  room: string,
  sub: string,
  roles: string[] = [],
  options: AsOptions = {},
): Promise<Client> {
  const res = await upgradeAs(room, sub, roles, options);
  if (res.status !== 101 || res.webSocket === null)
    throw new Error(`expected 101 for ${sub}, got ${res.status}: ${await res.text()}`);
  const client = new Client(res.webSocket);
  const welcome = await client.welcome();
  if (welcome.you.id !== (await verifiedUserId(sub)) || welcome.you.verified !== true)
    throw new Error(`welcomed as ${JSON.stringify(welcome.you)}`);
  return client;
}

/** A moderation API request with the admin bearer unless `init` sets its own headers. */
export function api(
  room: string,
  path: string,
  init: RequestInit & { bearer?: string | null } = {},
): Promise<Response> {
  const { bearer = ADMIN_TOKEN, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (bearer !== null) headers.set("Authorization", `Bearer ${bearer}`);
  if (rest.body !== undefined) headers.set("Content-Type", "application/json");
  return request(`/api/rooms/${room}${path}`, { ...rest, headers });
}

export function usage(room: string): Promise<Usage> {
  return runInDurableObject(roomStub(room), (instance: ChatRoom) => instance.usage);
}

/** Ends the room's instance as a deploy or a crash does: its sockets close, the next request starts from storage. */
export async function restart(room: string): Promise<void> {
  await runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.abort("test restart")).then(
    () => {
      throw new Error("abort did not end the instance");
    },
    () => undefined,
  );
}

/** The tables in a room's SQLite database, read without creating any. */
export function tables(room: string): Promise<string[]> {
  return runInDurableObject(roomStub(room), (_: ChatRoom, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .toArray()
      .map((row) => row.name),
  );
}
