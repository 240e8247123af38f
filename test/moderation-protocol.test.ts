// Pure tests of the v1.1 moderation frames: every field rule of
// parseClientFrame, and the helpers the HTTP API shares with it.

import { describe, expect, it } from "vitest";
import {
  CloseCode,
  MAX_BAN_MINUTES,
  MAX_REASON_LENGTH,
  MAX_SLOW_MODE_SECONDS,
  MAX_USER_ID_LENGTH,
  isModerator,
  mayDelete,
  tombstone,
  isSendableCloseCode,
  parseClientFrame,
  parseUserId,
  validateBanFields,
  validateSettingsFields,
  type ClientFrame,
  type Message,
  type User,
} from "../src/protocol.ts";

const frame = (value: Record<string, unknown>): string => JSON.stringify(value);

describe("parseClientFrame, moderation frames", () => {
  const accepted: [string, string, ClientFrame][] = [
    ["a delete", '{"type":"delete","id":42}', { type: "delete", id: 42 }],
    ["a delete of id 1", '{"type":"delete","id":1}', { type: "delete", id: 1 }],
    ["a delete with a nonce", '{"type":"delete","id":7,"nonce":"d1"}', { type: "delete", id: 7, nonce: "d1" }],
    [
      "a delete of the largest safe id",
      frame({ type: "delete", id: Number.MAX_SAFE_INTEGER }),
      { type: "delete", id: Number.MAX_SAFE_INTEGER },
    ],
    ["a bare ban", '{"type":"ban","user":"u_0123"}', { type: "ban", user: "u_0123" }],
    [
      "a ban with everything",
      frame({ type: "ban", user: "u_1", minutes: 10, reason: "spam", purge: true, nonce: "b1" }),
      { type: "ban", user: "u_1", minutes: 10, reason: "spam", purge: true, nonce: "b1" },
    ],
    ["a ban of 1 minute", frame({ type: "ban", user: "u_1", minutes: 1 }), { type: "ban", user: "u_1", minutes: 1 }],
    [
      "a ban of the longest time",
      frame({ type: "ban", user: "u_1", minutes: MAX_BAN_MINUTES }),
      { type: "ban", user: "u_1", minutes: MAX_BAN_MINUTES },
    ],
    ["purge false, left out", frame({ type: "ban", user: "u_1", purge: false }), { type: "ban", user: "u_1" }],
    [
      "a reason, trimmed",
      frame({ type: "ban", user: "u_1", reason: "  flood \n" }),
      { type: "ban", user: "u_1", reason: "flood" },
    ],
    [
      "a reason of 200 emoji",
      frame({ type: "ban", user: "u_1", reason: "😀".repeat(MAX_REASON_LENGTH) }),
      { type: "ban", user: "u_1", reason: "😀".repeat(MAX_REASON_LENGTH) },
    ],
    [
      "a user id of 256 code points",
      frame({ type: "ban", user: "é".repeat(MAX_USER_ID_LENGTH) }),
      { type: "ban", user: "é".repeat(MAX_USER_ID_LENGTH) },
    ],
    [
      "unknown fields, ignored",
      frame({ type: "ban", user: "u_1", by: "admin", until: 0 }),
      { type: "ban", user: "u_1" },
    ],
    ["an unban", '{"type":"unban","user":"v_9"}', { type: "unban", user: "v_9" }],
    ["an unban with a nonce", '{"type":"unban","user":"v_9","nonce":"x"}', { type: "unban", user: "v_9", nonce: "x" }],
    ["an unban ignores ban fields", frame({ type: "unban", user: "v_9", minutes: -1 }), { type: "unban", user: "v_9" }],
    ["slow mode off", '{"type":"settings","slowMode":0}', { type: "settings", slowMode: 0 }],
    ["slow mode 30 s", '{"type":"settings","slowMode":30,"nonce":"s"}', { type: "settings", slowMode: 30, nonce: "s" }],
    [
      "the longest slow mode",
      frame({ type: "settings", slowMode: MAX_SLOW_MODE_SECONDS }),
      { type: "settings", slowMode: MAX_SLOW_MODE_SECONDS },
    ],
    [
      "a nonce of 64",
      frame({ type: "delete", id: 1, nonce: "n".repeat(64) }),
      { type: "delete", id: 1, nonce: "n".repeat(64) },
    ],
  ];
  it.each(accepted)("accepts %s", (_, raw, value) => {
    expect(parseClientFrame(raw)).toEqual({ ok: true, value });
  });

  // [name, frame, code, the nonce the refusal echoes]
  const rejected: [string, string, string, string | undefined][] = [
    ["a delete without id", '{"type":"delete"}', "invalid_message", undefined],
    ["a delete of id 0", '{"type":"delete","id":0,"nonce":"d"}', "invalid_message", "d"],
    ["a delete of a negative id", '{"type":"delete","id":-3}', "invalid_message", undefined],
    ["a delete of a fraction", '{"type":"delete","id":1.5}', "invalid_message", undefined],
    ["a delete of an id as text", '{"type":"delete","id":"4"}', "invalid_message", undefined],
    ["a delete of an unsafe id", '{"type":"delete","id":9007199254740992}', "invalid_message", undefined],
    ["a delete of 1e999", '{"type":"delete","id":1e999}', "invalid_message", undefined],
    ["a delete of null", '{"type":"delete","id":null}', "invalid_message", undefined],
    ["a delete with a numeric nonce", '{"type":"delete","id":1,"nonce":5}', "invalid_message", undefined],
    [
      "a delete with a nonce of 65",
      frame({ type: "delete", id: 1, nonce: "n".repeat(65) }),
      "invalid_message",
      undefined,
    ],
    ["a delete with id only through __proto__", '{"type":"delete","__proto__":{"id":1}}', "invalid_message", undefined],
    ["a ban without user", '{"type":"ban","nonce":"b"}', "invalid_message", "b"],
    ["a ban of an empty user", '{"type":"ban","user":""}', "invalid_message", undefined],
    ["a ban of a numeric user", '{"type":"ban","user":12}', "invalid_message", undefined],
    [
      "a ban of a user id of 257",
      frame({ type: "ban", user: "u".repeat(MAX_USER_ID_LENGTH + 1) }),
      "invalid_message",
      undefined,
    ],
    ["a ban of a user with a control character", '{"type":"ban","user":"u_1\\n"}', "invalid_message", undefined],
    ["a ban of a user with a lone surrogate", '{"type":"ban","user":"u_\\ud800"}', "invalid_message", undefined],
    ["a ban of 0 minutes", '{"type":"ban","user":"u_1","minutes":0,"nonce":"b"}', "invalid_message", "b"],
    ["a ban of negative minutes", '{"type":"ban","user":"u_1","minutes":-5}', "invalid_message", undefined],
    ["a ban of 1.5 minutes", '{"type":"ban","user":"u_1","minutes":1.5}', "invalid_message", undefined],
    ["a ban of minutes as text", '{"type":"ban","user":"u_1","minutes":"10"}', "invalid_message", undefined],
    ["a ban of null minutes", '{"type":"ban","user":"u_1","minutes":null}', "invalid_message", undefined],
    [
      "a ban over a year",
      frame({ type: "ban", user: "u_1", minutes: MAX_BAN_MINUTES + 1 }),
      "invalid_message",
      undefined,
    ],
    ["a ban with an empty reason", '{"type":"ban","user":"u_1","reason":""}', "invalid_message", undefined],
    ["a ban with a blank reason", '{"type":"ban","user":"u_1","reason":" \\t "}', "invalid_message", undefined],
    ["a ban with a numeric reason", '{"type":"ban","user":"u_1","reason":3}', "invalid_message", undefined],
    ["a ban with a null reason", '{"type":"ban","user":"u_1","reason":null}', "invalid_message", undefined],
    [
      "a ban with a reason of 201",
      frame({ type: "ban", user: "u_1", reason: "😀".repeat(MAX_REASON_LENGTH + 1) }),
      "invalid_message",
      undefined,
    ],
    [
      "a ban with a control character inside the reason",
      '{"type":"ban","user":"u_1","reason":"a\\u0000b"}',
      "invalid_message",
      undefined,
    ],
    [
      "a ban with a DEL in the reason",
      '{"type":"ban","user":"u_1","reason":"a\\u007fb"}',
      "invalid_message",
      undefined,
    ],
    [
      "a ban with a lone surrogate in the reason",
      '{"type":"ban","user":"u_1","reason":"x\\udc00"}',
      "invalid_message",
      undefined,
    ],
    ["a ban with purge as text", '{"type":"ban","user":"u_1","purge":"yes","nonce":"p"}', "invalid_message", "p"],
    ["a ban with purge 1", '{"type":"ban","user":"u_1","purge":1}', "invalid_message", undefined],
    ["an unban without user", '{"type":"unban"}', "invalid_message", undefined],
    [
      "an unban of a user id of 257",
      frame({ type: "unban", user: "u".repeat(MAX_USER_ID_LENGTH + 1), nonce: "u" }),
      "invalid_message",
      "u",
    ],
    ["settings without slowMode", '{"type":"settings","nonce":"s"}', "invalid_message", "s"],
    ["a negative slow mode", '{"type":"settings","slowMode":-1}', "invalid_message", undefined],
    ["a fractional slow mode", '{"type":"settings","slowMode":0.5}', "invalid_message", undefined],
    ["a slow mode as text", '{"type":"settings","slowMode":"5"}', "invalid_message", undefined],
    ["a slow mode of null", '{"type":"settings","slowMode":null}', "invalid_message", undefined],
    [
      "a slow mode over an hour",
      frame({ type: "settings", slowMode: MAX_SLOW_MODE_SECONDS + 1 }),
      "invalid_message",
      undefined,
    ],
    ["a type in other case", '{"type":"Ban","user":"u_1","nonce":"c"}', "unknown_type", undefined],
    ["a server-only type", '{"type":"welcome"}', "unknown_type", undefined],
  ];
  it.each(rejected)("rejects %s", (_, raw, code, nonce) => {
    const parsed = parseClientFrame(raw);
    expect(parsed).toMatchObject({ ok: false, code });
    if (parsed.ok) return;
    expect(parsed.message.length).toBeGreaterThan(0);
    expect(parsed.nonce).toBe(nonce);
  });
});

describe("HTTP bodies share the frame rules", () => {
  it("reads a ban body, empty included", () => {
    expect(validateBanFields({})).toEqual({ ok: true, value: {} });
    expect(validateBanFields({ minutes: 60, reason: " r ", purge: true })).toEqual({
      ok: true,
      value: { minutes: 60, reason: "r", purge: true },
    });
    expect(validateBanFields({ minutes: 0 })).toMatchObject({ ok: false, code: "invalid_message" });
  });

  it("reads a settings body", () => {
    expect(validateSettingsFields({ slowMode: 5, other: true })).toEqual({ ok: true, value: { slowMode: 5 } });
    expect(validateSettingsFields({})).toMatchObject({ ok: false, code: "invalid_message" });
  });

  it("reads a user id from a path", () => {
    expect(parseUserId("u_0123abcd")).toBe("u_0123abcd");
    expect(parseUserId("")).toBeNull();
    expect(parseUserId("a\u0085b")).toBeNull();
    expect(parseUserId("x".repeat(MAX_USER_ID_LENGTH + 1))).toBeNull();
  });
});

describe("roles and close codes", () => {
  const users: [string, User, boolean][] = [
    ["a verified moderator", { id: "v_1", name: "m", verified: true, roles: ["moderator"] }, true],
    [
      "a verified moderator with other roles",
      { id: "v_1", name: "m", verified: true, roles: ["staff", "moderator"] },
      true,
    ],
    ["a verified user without roles", { id: "v_1", name: "m", verified: true }, false],
    [
      "a verified user with other roles",
      { id: "v_1", name: "m", verified: true, roles: ["Moderator", "admin"] },
      false,
    ],
    ["a guest claiming the role", { id: "u_1", name: "m", roles: ["moderator"] }, false],
  ];
  it.each(users)("%s: moderator %#", (_, user, expected) => expect(isModerator(user)).toBe(expected));

  it("lets the author or a moderator delete, nobody else", () => {
    const author: User = { id: "u_a", name: "a" };
    const message: Message = { type: "message", id: 3, ts: 1, from: author, text: "hi", nonce: "n" };
    expect(mayDelete(author, message)).toBe(true);
    expect(mayDelete({ id: "u_b", name: "a" }, message)).toBe(false);
    expect(mayDelete({ id: "u_b", name: "a", roles: ["moderator"] }, message)).toBe(false);
    expect(mayDelete({ id: "v_m", name: "m", verified: true, roles: ["moderator"] }, message)).toBe(true);
  });

  it("turns a message into a tombstone that keeps id, ts and from, and drops text and nonce", () => {
    const from: User = { id: "v_a", name: "a", verified: true };
    const message: Message = { type: "message", id: 3, ts: 1, from, text: "hi", nonce: "n" };
    expect(tombstone(message)).toEqual({ type: "message", id: 3, ts: 1, from, text: "", deleted: true });
    expect(tombstone(tombstone(message))).toEqual(tombstone(message));
  });

  it("closes a banned socket with 4003, a legal code", () => {
    expect(CloseCode.banned).toBe(4003);
    expect(isSendableCloseCode(CloseCode.banned)).toBe(true);
  });
});
