// What the moderation tests share: the project's secrets (vitest.config.ts),
// moderators, and a way to stop and wake a room.

import { runInDurableObject } from "cloudflare:test";
import { mintToken } from "../../scripts/mint.ts";
import { verifiedUserId } from "../../src/auth.ts";
import type { User } from "../../src/protocol.ts";
import { admissionRequest, type ChatRoom, type Usage } from "../../src/room.ts";
import { Client, request, roomStub } from "../helpers.ts";

export const ADMIN_TOKEN = "test-admin-token";
export const JWT_SECRET = "test-moderation-jwt-secret-0123456789abcdef";
export const ADMIN: User = { id: "admin", name: "admin" };

/** A host JWT for `sub`, as a site would mint it. */
export function hostJwt(sub: string, roles: string[] = []): Promise<string> {
  return mintToken(JWT_SECRET, { sub, name: sub, roles, rooms: [], minutes: 10 });
}

/** The user a host JWT for `sub` with `roles` makes. */
export async function verifiedUser(sub: string, roles: string[] = []): Promise<User> {
  return { id: await verifiedUserId(sub), name: sub, verified: true, roles };
}

/**
 * Connects `user` straight through the Worker-to-room contract (an
 * admission), as the Worker does once it has decided who the user is.
 */
export async function admit(
  room: string,
  user: User,
  { address = "10.9.9.9", batch = false }: { address?: string; batch?: boolean } = {},
): Promise<Response> {
  return roomStub(room).fetch(admissionRequest({ room, user, address, token: "unused", after: null, batch }));
}

export async function joinAs(room: string, user: User, options: { address?: string; batch?: boolean } = {}): Promise<Client> {
  const res = await admit(room, user, options);
  if (res.status !== 101 || res.webSocket === null) throw new Error(`expected 101 for ${user.id}, got ${res.status}: ${await res.text()}`);
  const client = new Client(res.webSocket);
  const welcome = await client.welcome();
  if (welcome.you.id !== user.id) throw new Error(`welcomed as ${welcome.you.id}`);
  return client;
}

/** A moderation API request with the admin bearer unless `init` sets its own headers. */
export function api(room: string, path: string, init: RequestInit & { bearer?: string | null } = {}): Promise<Response> {
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
