// public/js/rules.js repeats the input rules of src/protocol.ts for the
// browser, which cannot load TypeScript without a build step. These tables
// run the same inputs through both, so the copy cannot drift.

import { describe, expect, it } from "vitest";
import * as server from "../../src/protocol.ts";
import * as client from "../../public/js/rules.js";

const names: string[] = [
  "alice",
  "  alice ",
  "",
  "   ",
  "x".repeat(32),
  "x".repeat(33),
  "😀".repeat(32),
  "😀".repeat(33),
  "Zoë ☕",
  "a\u0000b",
  "a\nb",
  "a\u007f",
  "a\u0085",
  "\ud800x",
  "x\udc00",
  "a\u061cb",
  "a\u200eb",
  "a\u200fb",
  "a\u202ab",
  "a\u202bb",
  "a\u202cb",
  "a\u202db",
  "right\u202eleft",
  "a\u2066b",
  "a\u2067b",
  "a\u2068b",
  "a\u2069b",
  "a\u00adb",
  "a\u200bb",
  "a\u2060b",
  "a\ufeffb",
  "\ufeffalice",
  "\u115f",
  "a\u1160",
  "\u3164",
  "a\uffa0b",
  "\u{1f469}\u200d\u{1f4bb}",
  "\u2764\ufe0f",
  "\u0645\u06cc\u200c\u062e",
  "bot",
  " bot ",
  "BOT",
  "Bot",
  "robot",
  "bot 2",
  "\u05e9\u05dc\u05d5\u05dd",
  "<i>x</i>",
  "\u00a0a\u00a0",
];

const rooms: string[] = [
  "lobby",
  "Lobby",
  "a",
  "9-x_Y",
  "r".repeat(64),
  "r".repeat(65),
  "",
  "-a",
  "_a",
  "a b",
  "a.b",
  "\u212a",
  "caf\u00e9",
  "a%20b",
  "İ",
  "ops",
];

const texts: string[] = ["", "a", "😀😀", "e\u0301", "\ud800", "x\udc00y", "€".repeat(5), "\u{1f469}\u200d\u{1f4bb}"];

describe("rules.js agrees with protocol.ts", () => {
  it.each(names)("normalizeName(%j)", (raw) => expect(client.normalizeName(raw)).toBe(server.normalizeName(raw)));
  it.each(rooms)("normalizeRoom(%j)", (raw) => expect(client.normalizeRoom(raw)).toBe(server.normalizeRoom(raw)));
  it.each(texts)("codePointLength(%j)", (s) => expect(client.codePointLength(s)).toBe(server.codePointLength(s)));

  it("has the same limits and defaults", () => {
    expect([client.MAX_NAME_LENGTH, client.MAX_ROOM_LENGTH, client.DEFAULT_ROOM]).toEqual([
      server.MAX_NAME_LENGTH,
      server.MAX_ROOM_LENGTH,
      server.DEFAULT_ROOM,
    ]);
    expect(client.DEFAULT_LIMITS).toEqual({
      history: server.DEFAULT_HISTORY_SIZE,
      text: server.MAX_TEXT_LENGTH,
      name: server.MAX_NAME_LENGTH,
      burst: server.DEFAULT_RATE_BURST,
      perSec: server.DEFAULT_RATE_PER_SEC,
    });
  });
});
