// Pure tests of the wire rules: no runtime, no sockets.

import { describe, expect, it } from "vitest";
import {
  codePointLength,
  isOversized,
  isSendableCloseCode,
  normalizeName,
  normalizeRoom,
  parseAfter,
  parseClientFrame,
  type ClientFrame,
  type Parsed,
} from "../src/protocol.ts";

describe("parseClientFrame", () => {
  const rejected: [string, string, string][] = [
    ["empty", "", "bad_json"],
    ["not JSON", "hello", "bad_json"],
    ["truncated", '{"type":"message"', "bad_json"],
    ["null", "null", "bad_json"],
    ["an array", "[]", "bad_json"],
    ["a number", "1e999", "bad_json"],
    ["a string", '"message"', "bad_json"],
    ["true", "true", "bad_json"],
    ["no type", '{"text":"hi"}', "unknown_type"],
    ["type null", '{"type":null,"text":"hi"}', "unknown_type"],
    ["type as an array", '{"type":["message"],"text":"hi"}', "unknown_type"],
    ["type in other case", '{"type":"Message","text":"hi"}', "unknown_type"],
    ["type constructor", '{"type":"constructor","text":"hi"}', "unknown_type"],
    ["no text", '{"type":"message"}', "invalid_message"],
    ["text null", '{"type":"message","text":null}', "invalid_message"],
    ["text an object", '{"type":"message","text":{"a":1}}', "invalid_message"],
    ["empty text", '{"type":"message","text":""}', "invalid_message"],
    ["white space only", '{"type":"message","text":"\\u00a0 \\n"}', "invalid_message"],
    ["a lone high surrogate", '{"type":"message","text":"\\ud83d"}', "invalid_message"],
    ["a lone low surrogate", '{"type":"message","text":"x\\ude00"}', "invalid_message"],
    ["2001 code points", JSON.stringify({ type: "message", text: "é".repeat(2001) }), "invalid_message"],
    ["nonce null", '{"type":"message","text":"hi","nonce":null}', "invalid_message"],
    ["nonce a number", '{"type":"message","text":"hi","nonce":1}', "invalid_message"],
    ["nonce of 65", JSON.stringify({ type: "message", text: "hi", nonce: "x".repeat(65) }), "invalid_message"],
    ["text only through __proto__", '{"type":"message","__proto__":{"text":"hi"}}', "invalid_message"],
  ];
  it.each(rejected)("rejects %s", (_, raw, code) => {
    const parsed = parseClientFrame(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.code).toBe(code);
      expect(parsed.message.length).toBeGreaterThan(0);
    }
  });

  it("accepts a message and keeps its text exactly", () => {
    expect(parseClientFrame('{"type":"message","text":"  hi\\n","nonce":"c1"}')).toEqual({
      ok: true,
      value: { type: "message", text: "  hi\n", nonce: "c1" },
    });
    expect(parseClientFrame('{"type":"message","text":"hi"}')).toEqual({
      ok: true,
      value: { type: "message", text: "hi" },
    });
  });

  it("counts the text limit in code points, so 2000 emoji pass", () => {
    const text = "😀".repeat(2000);
    expect(text.length).toBe(4000);
    expect(parseClientFrame(JSON.stringify({ type: "message", text }))).toEqual({
      ok: true,
      value: { type: "message", text },
    });
  });

  it("accepts a nonce of 64 and ignores unknown fields", () => {
    const nonce = "n".repeat(64);
    const parsed = parseClientFrame(JSON.stringify({ type: "message", text: "x", nonce, from: "admin", id: 7 }));
    expect(parsed).toEqual({ ok: true, value: { type: "message", text: "x", nonce } });
  });

  it("reads an ack (extension) and refuses one without a whole id", () => {
    expect(parseClientFrame('{"type":"ack","id":42}')).toEqual({ ok: true, value: { type: "ack", id: 42 } });
    expect(parseClientFrame('{"type":"ack","id":0}')).toEqual({ ok: true, value: { type: "ack", id: 0 } });
    for (const id of ['"42"', "-1", "1.5", "1e999", "null"]) {
      expect(parseClientFrame(`{"type":"ack","id":${id}}`), id).toMatchObject({ ok: false, code: "invalid_message" });
    }
    expect(parseClientFrame('{"type":"ack"}')).toMatchObject({ ok: false, code: "invalid_message" });
  });

  it("keeps a valid nonce with an invalid_message refusal", () => {
    expect(parseClientFrame('{"type":"message","text":"","nonce":"c7"}')).toMatchObject({
      ok: false,
      code: "invalid_message",
      nonce: "c7",
    });
    expect(parseClientFrame('{"type":"message","text":"","nonce":7}')).not.toHaveProperty("nonce");
    expect(parseClientFrame('{"type":"shout","nonce":"c7"}')).not.toHaveProperty("nonce");
  });

  it("returns a value of its own making: no key of the frame's but text and nonce, a plain prototype", () => {
    const parsed = parseClientFrame(
      '{"type":"message","text":"x","__proto__":{"nonce":"n","text":"y"},"from":"admin","id":7}',
    );
    expect(parsed).toEqual({ ok: true, value: { type: "message", text: "x" } });
    if (!parsed.ok) return;
    expect(Object.keys(parsed.value)).toEqual(["type", "text"]);
    expect(Object.getPrototypeOf(parsed.value)).toBe(Object.prototype);
    const refused = parseClientFrame('{"type":"message","text":"","__proto__":{"nonce":"n"}}');
    expect(Object.keys(refused)).toEqual(["ok", "code", "message"]);
  });

  it("reads only a frame's own fields, even with Object.prototype polluted", () => {
    const proto = Object.prototype as Record<string, unknown>;
    const polluted = { type: "message", text: "polluted", nonce: "polluted", id: 7 };
    let answers: Parsed<ClientFrame>[];
    try {
      Object.assign(proto, polluted);
      answers = [
        '{"text":"x"}',
        '{"type":"message"}',
        '{"type":"message","text":"x"}',
        '{"type":"ack"}',
        '{"type":"message","text":""}',
      ].map(parseClientFrame);
    } finally {
      for (const key of Object.keys(polluted)) delete proto[key];
    }
    expect(answers.map((a) => ({ ...a }))).toEqual([
      { ok: false, code: "unknown_type", message: "type is missing" },
      { ok: false, code: "invalid_message", message: "text must be a string" },
      { ok: true, value: { type: "message", text: "x" } },
      { ok: false, code: "invalid_message", message: expect.stringContaining("ack needs an id") },
      { ok: false, code: "invalid_message", message: "text is empty" },
    ]);
    // A nonce only the prototype had is not the frame's.
    expect(answers.map((a) => Object.hasOwn(a.ok ? a.value : a, "nonce"))).toEqual([false, false, false, false, false]);
  });

  it("survives deeply nested JSON", () => {
    const deep = "[".repeat(5000) + "]".repeat(5000);
    expect(parseClientFrame(deep)).toMatchObject({ ok: false, code: "bad_json" });
    const nested = `{"type":"message","text":"x","extra":${"[".repeat(5000)}${"]".repeat(5000)}}`;
    expect(parseClientFrame(nested)).toMatchObject({ ok: true });
  });
});

describe("normalizeRoom", () => {
  it.each([
    ["lobby", "lobby"],
    ["Lobby", "lobby"],
    ["a", "a"],
    ["9-x_Y", "9-x_y"],
    ["r".repeat(64), "r".repeat(64)],
  ])("accepts %s as %s", (raw, room) => expect(normalizeRoom(raw)).toBe(room));

  it.each(["", "-a", "_a", "a b", "a.b", "r".repeat(65), "\u212a", "caf\u00e9", "a%20b", "İ"])("rejects %j", (raw) =>
    expect(normalizeRoom(raw)).toBeNull(),
  );
});

describe("normalizeName", () => {
  it("trims and keeps up to 32 code points", () => {
    expect(normalizeName("  alice ")).toBe("alice");
    expect(normalizeName("😀".repeat(32))).toBe("😀".repeat(32));
    expect(normalizeName("Zoë ☕")).toBe("Zoë ☕");
  });
  it.each([
    null,
    undefined,
    "",
    "   ",
    "x".repeat(33),
    "😀".repeat(33),
    "a\u0000b",
    "a\nb",
    "a\u007f",
    "a\u0085",
    "\ud800x",
  ])("rejects %j", (raw) => expect(normalizeName(raw)).toBeNull());
  // v1.1 "Display names": what reorders or hides the text beside a name.
  it.each([
    ["U+061C arabic letter mark", "a\u061cb"],
    ["U+200E left-to-right mark", "a\u200eb"],
    ["U+200F right-to-left mark", "a\u200fb"],
    ["U+202A left-to-right embedding", "a\u202ab"],
    ["U+202B right-to-left embedding", "a\u202bb"],
    ["U+202C pop directional formatting", "a\u202cb"],
    ["U+202D left-to-right override", "a\u202db"],
    ["U+202E right-to-left override", "right\u202eleft"],
    ["U+2066 left-to-right isolate", "a\u2066b"],
    ["U+2067 right-to-left isolate", "a\u2067b"],
    ["U+2068 first strong isolate", "a\u2068b"],
    ["U+2069 pop directional isolate", "a\u2069b"],
    ["U+00AD soft hyphen", "a\u00adb"],
    ["U+200B zero width space", "a\u200bb"],
    ["U+2060 word joiner", "a\u2060b"],
    ["U+FEFF zero width no-break space", "a\ufeffb"],
    ["U+FEFF at the start (trim() would strip it)", "\ufeffalice"],
    ["U+115F hangul choseong filler", "\u115f"],
    ["U+1160 hangul jungseong filler", "a\u1160"],
    ["U+3164 hangul filler", "\u3164"],
    ["U+FFA0 halfwidth hangul filler", "a\uffa0b"],
    ["the name bot", "bot"],
    ["the name bot, padded", "  bot "],
    ["the name bot in capitals", "BOT"],
    ["the name bot, mixed case", "Bot"],
  ])("rejects a name with %s", (_what, raw) => expect(normalizeName(raw)).toBeNull());
  it.each([
    ["a zero width non-joiner (U+200C)", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"],
    ["an emoji ZWJ sequence (U+200D)", "\u{1f469}\u200d\u{1f4bb} dev"],
    ["a variation selector (U+FE0F)", "\u2764\ufe0f love"],
    ["a keycap sequence", "1\ufe0f\u20e3 one"],
    ["right-to-left letters", "\u05e9\u05dc\u05d5\u05dd"],
    ["bot inside a longer name", "robot"],
    ["bot with more after it", "bot 2"],
  ])("keeps a name with %s", (_what, raw) => expect(normalizeName(raw)).toBe(raw));
});

describe("parseAfter", () => {
  it.each([
    ["0", 0],
    ["42", 42],
    ["007", 7],
  ])("reads %s", (raw, n) => expect(parseAfter(raw)).toBe(n));
  it.each([null, "", "-1", "1.5", "1e3", " 1", "1 ", "0x10", "abc", "١٢"])("ignores %j", (raw) =>
    expect(parseAfter(raw)).toBeNull(),
  );
});

describe("limits", () => {
  it("measures frames in UTF-8 bytes", () => {
    expect(isOversized("x".repeat(16_384))).toBe(false);
    expect(isOversized("x".repeat(16_385))).toBe(true);
    expect(isOversized("€".repeat(5461))).toBe(false); // 16,383 bytes
    expect(isOversized("€".repeat(5462))).toBe(true); // 16,386 bytes
    expect(isOversized("😀".repeat(4096))).toBe(false); // 16,384 bytes
    expect(isOversized("😀".repeat(4097))).toBe(true);
  });

  it("counts code points", () => {
    expect(codePointLength("")).toBe(0);
    expect(codePointLength("a😀b")).toBe(3);
    expect(codePointLength("\ud800")).toBe(1);
  });

  it("sends only legal close codes", () => {
    for (const code of [1000, 1001, 1008, 1009, 1011, 4000]) expect(isSendableCloseCode(code)).toBe(true);
    for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) expect(isSendableCloseCode(code)).toBe(false);
  });
});
