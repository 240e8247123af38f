// The fuzz run: hostile and odd input against the contract, in one room with
// a bystander listening.
//
// A. Invisible: frames that must each draw one `error` frame of a known code
//    (or a close code) and nothing else. The bystander sees none of it, and
//    the stored history does not change.
// B. Odd but valid: control characters, astral text at the limit, spoofed
//    `from`/`id`, `__proto__` keys. Each is stored and sent exactly as sent,
//    server-stamped; the bystander sees exactly these.
// C. Bursts: thousands of frames at once (bad JSON, valid messages, pings).
// D. Query parameters (`name`, `after`, `token`) and the HTTP surface.
//
// The workerd RSS is sampled before and after and reported.

import type { ErrorCode, Message } from "../src/protocol.ts";
import { describe, narrowHistoryPage, sameMessage } from "../tools/harness/frames.ts";
import type { Findings } from "./findings.ts";
import { Probe, type ProbeEvent, show } from "./probe.ts";
import type { DevServer } from "../tools/harness/devserver.ts";
import { sleep } from "../tools/harness/wait.ts";

export interface FuzzOptions {
  server: DevServer;
  findings: Findings;
  room: string;
  random: () => number;
  log: (line: string) => void;
  rss: () => string;
  verbose: boolean;
  /** Rounds of the burst phase, and frames per burst. */
  rounds: number;
  burstFrames: number;
  /**
   * Sharded runs: idle sockets opened first, SHARD_SIZE of them, so that the
   * room's own object is full and the bystander and every hostile socket land
   * on parts.
   */
  fill: number;
}

type Payload = { data: string | Buffer; binary?: boolean };
interface ErrorCase extends Payload {
  name: string;
  code: ErrorCode;
}

const MAX_FRAME = 16_384;
const RSS_GROWTH_LIMIT_KIB = 1024 * 1024;
const LAST_ROUND_GROWTH_LIMIT_KIB = 64 * 1024;

const nest = (open: string, close: string, depth: number, inner = ""): string =>
  open.repeat(depth) + inner + close.repeat(depth);
const msg = (fields: string): string => `{"type":"message",${fields}}`;

function errorCases(random: () => number): ErrorCase[] {
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const cases: ErrorCase[] = [
    { name: "empty text frame", data: "", code: "bad_json" },
    { name: "null", data: "null", code: "bad_json" },
    { name: "array", data: "[]", code: "bad_json" },
    { name: "array of a message", data: `[${msg('"text":"x"')}]`, code: "bad_json" },
    { name: "number", data: "42", code: "bad_json" },
    { name: "string", data: '"message"', code: "bad_json" },
    { name: "true", data: "true", code: "bad_json" },
    { name: "truncated object", data: '{"type":"message","text":"x"', code: "bad_json" },
    { name: "truncated key", data: '{"type":"mess', code: "bad_json" },
    { name: "lone brace", data: "{", code: "bad_json" },
    { name: "trailing garbage", data: `${msg('"text":"x"')}x`, code: "bad_json" },
    { name: "two objects", data: "{}{}", code: "bad_json" },
    { name: "single quotes", data: "{'type':'message','text':'x'}", code: "bad_json" },
    { name: "NaN literal", data: msg('"text":NaN'), code: "bad_json" },
    { name: "ping with a space", data: "ping ", code: "bad_json" },
    { name: "PING", data: "PING", code: "bad_json" },
    { name: "pong", data: "pong", code: "bad_json" },
    { name: "BOM then object", data: `\ufeff${msg('"text":"x"')}`, code: "bad_json" },
    { name: "arrays nested 8000 deep", data: nest("[", "]", 8000), code: "bad_json" },
    { name: "objects nested 2700 deep", data: nest('{"a":', "}", 2700, "1"), code: "unknown_type" },
    { name: "empty object", data: "{}", code: "unknown_type" },
    { name: "type null", data: '{"type":null,"text":"x"}', code: "unknown_type" },
    { name: "type upper case", data: '{"type":"MESSAGE","text":"x"}', code: "unknown_type" },
    { name: "type with space", data: '{"type":"message ","text":"x"}', code: "unknown_type" },
    { name: "type array", data: '{"type":["message"],"text":"x"}', code: "unknown_type" },
    { name: "type 1e999", data: '{"type":1e999,"text":"x"}', code: "unknown_type" },
    { name: "type welcome", data: '{"type":"welcome","text":"x"}', code: "unknown_type" },
    { name: "type error", data: '{"type":"error","code":"bad_json"}', code: "unknown_type" },
    { name: "type join", data: '{"type":"join","user":{"id":"u_x","name":"x"}}', code: "unknown_type" },
    { name: "type __proto__", data: '{"type":"__proto__","text":"x"}', code: "unknown_type" },
    { name: "type constructor", data: '{"type":"constructor","text":"x"}', code: "unknown_type" },
    { name: "type toString", data: '{"type":"toString","text":"x"}', code: "unknown_type" },
    { name: "type hasOwnProperty", data: '{"type":"hasOwnProperty","text":"x"}', code: "unknown_type" },
    { name: "__proto__ carrying type", data: '{"__proto__":{"type":"message","text":"x"}}', code: "unknown_type" },
    {
      name: "constructor.prototype carrying type",
      data: '{"constructor":{"prototype":{"type":"message"}},"text":"x"}',
      code: "unknown_type",
    },
    { name: "no text", data: msg('"nonce":"n"'), code: "invalid_message" },
    { name: "__proto__ carrying text", data: msg('"__proto__":{"text":"x"}'), code: "invalid_message" },
    { name: "text null", data: msg('"text":null'), code: "invalid_message" },
    { name: "text number", data: msg('"text":1'), code: "invalid_message" },
    { name: "text 1e999", data: msg('"text":1e999'), code: "invalid_message" },
    { name: "text huge integer", data: msg(`"text":${"9".repeat(400)}`), code: "invalid_message" },
    { name: "text -0", data: msg('"text":-0'), code: "invalid_message" },
    { name: "text true", data: msg('"text":true'), code: "invalid_message" },
    { name: "text array", data: msg('"text":["x"]'), code: "invalid_message" },
    { name: "text object", data: msg('"text":{"toString":"x"}'), code: "invalid_message" },
    { name: "text __proto__ object", data: msg('"text":{"__proto__":{"length":1}}'), code: "invalid_message" },
    { name: "text empty", data: msg('"text":""'), code: "invalid_message" },
    { name: "text whitespace", data: msg('"text":" \\t\\n\\r "'), code: "invalid_message" },
    { name: "text BOM and ideographic space", data: msg('"text":"\\ufeff\\u3000"'), code: "invalid_message" },
    { name: "text lone high surrogate", data: msg('"text":"\\ud800"'), code: "invalid_message" },
    { name: "text lone low surrogate inside", data: msg('"text":"a\\udc00b"'), code: "invalid_message" },
    { name: "text high surrogate at the end", data: msg('"text":"ok\\udbff"'), code: "invalid_message" },
    { name: "text surrogates reversed", data: msg('"text":"\\ude00\\ud83d"'), code: "invalid_message" },
    { name: "text 2001 characters", data: msg(`"text":"${"a".repeat(2001)}"`), code: "invalid_message" },
    { name: "text 2001 astral characters", data: msg(`"text":"${"😀".repeat(2001)}"`), code: "invalid_message" },
    {
      name: "last duplicate text key wins (lone surrogate)",
      data: msg('"text":"ok","text":"\\ud800"'),
      code: "invalid_message",
    },
    { name: "nonce number", data: msg('"text":"x","nonce":5'), code: "invalid_message" },
    {
      name: "nonce huge number",
      data: msg('"text":"x","nonce":123456789012345678901234567890'),
      code: "invalid_message",
    },
    { name: "nonce null", data: msg('"text":"x","nonce":null'), code: "invalid_message" },
    { name: "nonce object", data: msg('"text":"x","nonce":{"__proto__":null}'), code: "invalid_message" },
    { name: "nonce array", data: msg('"text":"x","nonce":["n"]'), code: "invalid_message" },
    { name: "nonce 65 characters", data: msg(`"text":"x","nonce":"${"n".repeat(65)}"`), code: "invalid_message" },
    {
      name: "nonce nested 2000 deep",
      data: msg(`"text":"x","nonce":${nest("[", "]", 2000)}`),
      code: "invalid_message",
    },
    {
      name: "text of 16384 bytes",
      data: msg(`"text":"${"a".repeat(MAX_FRAME - msg('"text":""').length)}"`),
      code: "invalid_message",
    },
    { name: "binary: random bytes", data: bytes(257), binary: true, code: "unsupported" },
    { name: "binary: one byte", data: bytes(1), binary: true, code: "unsupported" },
    { name: "binary: empty", data: Buffer.alloc(0), binary: true, code: "unsupported" },
    {
      name: "binary: a valid message",
      data: Buffer.from(msg('"text":"binary hi","nonce":"bin"')),
      binary: true,
      code: "unsupported",
    },
    { name: "binary: the word ping", data: Buffer.from("ping"), binary: true, code: "unsupported" },
    { name: "binary: 16384 bytes", data: bytes(MAX_FRAME), binary: true, code: "unsupported" },
  ];
  for (let i = 0; i < 6; i++) {
    const raw = bytes(1 + Math.floor(random() * 600));
    cases.push({ name: `binary: random ${raw.length} bytes #${i}`, data: raw, binary: true, code: "unsupported" });
  }
  return cases;
}

/** Valid, if odd, messages: each must be stored and echoed exactly. */
function oddMessages(): Array<{ name: string; data: string; text: string; nonce?: string }> {
  const raw = (name: string, frame: Record<string, unknown>, text: string, nonce?: string) => ({
    name,
    data: JSON.stringify(frame),
    text,
    nonce,
  });
  const control = "\u0000\u0001\u0007\u001b[31m\u001f\u007f\u0085 ctl";
  return [
    raw("control characters", { type: "message", text: control, nonce: "odd-1" }, control, "odd-1"),
    raw("zero-width space only", { type: "message", text: "\u200b", nonce: "odd-2" }, "\u200b", "odd-2"),
    raw(
      "2000 astral characters",
      { type: "message", text: "😀".repeat(2000), nonce: "odd-3" },
      "😀".repeat(2000),
      "odd-3",
    ),
    raw("2000 ASCII characters", { type: "message", text: "b".repeat(2000) }, "b".repeat(2000)),
    raw(
      "markup",
      { type: "message", text: "</script><img src=x onerror=alert(1)>", nonce: "odd-5" },
      "</script><img src=x onerror=alert(1)>",
      "odd-5",
    ),
    raw("spaces kept", { type: "message", text: "  padded \r\n", nonce: "odd-6" }, "  padded \r\n", "odd-6"),
    raw(
      "spoofed from/id/ts",
      { type: "message", text: "spoof", nonce: "odd-7", from: { id: "u_evil", name: "admin" }, id: 1e9, ts: 0 },
      "spoof",
      "odd-7",
    ),
    {
      name: "__proto__ key beside text",
      data: msg('"text":"proto","nonce":"odd-8","__proto__":{"from":{"id":"u_evil","name":"admin"},"text":"evil"}'),
      text: "proto",
      nonce: "odd-8",
    },
    {
      name: "constructor key beside text",
      data: msg('"text":"ctor","nonce":"odd-9","constructor":{"prototype":{"text":"evil"}}'),
      text: "ctor",
      nonce: "odd-9",
    },
    {
      name: "duplicate text keys, last one wins",
      data: msg('"text":"\\ud800","text":"dup","nonce":"odd-10"'),
      text: "dup",
      nonce: "odd-10",
    },
    {
      name: "huge extra number",
      data: msg('"text":"big","nonce":"odd-11","id":1e999,"n":123456789012345678901234567890'),
      text: "big",
      nonce: "odd-11",
    },
    { name: "escaped astral pair", data: msg('"text":"\\ud83d\\ude00","nonce":"odd-12"'), text: "😀", nonce: "odd-12" },
    {
      name: "nonce 64 characters",
      data: msg(`"text":"n64","nonce":"${"n".repeat(64)}"`),
      text: "n64",
      nonce: "n".repeat(64),
    },
    { name: "nonce empty", data: msg('"text":"n0","nonce":""'), text: "n0", nonce: "" },
    { name: "nonce __proto__", data: msg('"text":"np","nonce":"__proto__"'), text: "np", nonce: "__proto__" },
  ];
}

export async function fuzz(o: FuzzOptions): Promise<void> {
  const f = o.findings;
  const t0 = Date.now();
  const base = `${o.server.wsUrl}/chat/${o.room}`;
  const fail = (text: string): void => f.violation(`fuzz: ${text}`);
  const rss0 = o.server.workerdRss();
  o.log(`  workerd RSS before: ${o.rss()}`);

  const open = async (query = "name=fuzzer"): Promise<Probe | null> => {
    const p = await Probe.open(`${base}?${query}`);
    if (p instanceof Probe) return p;
    fail(`connect ?${query.slice(0, 60)} failed: ${"status" in p ? `HTTP ${p.status}` : p.error}`);
    return null;
  };
  const fillers: Probe[] = [];
  for (let i = 0; i < o.fill; i++) {
    const p = await open(`name=filler-${i}`);
    if (p !== null) fillers.push(p);
  }
  const bystander = await open("name=bystander");
  if (bystander === null) return;
  // Only a part's welcome carries onlineCount (a one-object room's is v1's).
  if (o.fill > 0 && bystander.welcome?.onlineCount === undefined)
    fail(
      `the bystander joined after ${o.fill} fillers with SHARD_SIZE ${o.fill} but its welcome has no onlineCount: it is not on a part`,
    );
  // A client pings at least every 30 s or may be closed as dead.
  const keepAlive = setInterval(() => {
    for (const p of [bystander, ...fillers]) p.send("ping");
  }, 20_000);
  const history0 = await historyNow(o);

  // A. One error frame each, nothing else, connection stays open.
  const lap = (() => {
    let t = Date.now();
    return (): string => {
      const d = Date.now() - t;
      t = Date.now();
      return `${(d / 1000).toFixed(1)} s`;
    };
  })();
  const cases = errorCases(o.random);
  let errorsOk = 0;
  for (let i = 0; i < cases.length; i += 15) {
    const p = await open();
    if (p === null) return;
    for (const c of cases.slice(i, i + 15)) {
      p.send(c.data, c.binary);
      const e = await p.next();
      if (e.kind === "frame" && e.frame.type === "error" && e.frame.code === c.code) errorsOk++;
      else fail(`${c.name}: expected error ${c.code}, got ${show(e)}`);
      if (e.kind === "close") break;
    }
    p.send("ping");
    const pong = await p.next();
    if (pong.kind !== "pong")
      fail(`after ${Math.min(15, cases.length - i)} bad frames the connection did not answer ping (${show(pong)})`);
    p.close();
  }
  o.log(`  A. ${errorsOk}/${cases.length} bad frames drew the right error frame (${lap()})`);

  const closeCases: Array<{ name: string; payload: Payload; code: number }> = [
    {
      name: "text frame of 16385 bytes",
      payload: { data: msg(`"text":"${"a".repeat(MAX_FRAME + 1 - msg('"text":""').length)}"`) },
      code: 1009,
    },
    { name: "text frame of 16386 bytes in 5462 characters", payload: { data: "€".repeat(5462) }, code: 1009 },
    {
      name: "binary frame of 16385 bytes",
      payload: { data: Buffer.alloc(MAX_FRAME + 1, 0x7b), binary: true },
      code: 1009,
    },
    { name: "text frame of 1 MiB", payload: { data: "x".repeat(1 << 20) }, code: 1009 },
  ];
  for (const c of closeCases) {
    const p = await open();
    if (p === null) return;
    p.send(c.payload.data, c.payload.binary);
    const events = await p.drain(10_000);
    const last = events.at(-1);
    if (events.length !== 1 || last?.kind !== "close" || last.code !== c.code)
      fail(`${c.name}: expected close ${c.code} and nothing else, got ${events.map(show).join(", ")}`);
  }
  {
    // Twenty error frames of any code within a minute close the connection.
    const p = await open();
    if (p === null) return;
    const codes: string[] = [];
    for (const c of cases.filter((_, k) => k % 3 === 0).slice(0, 19)) {
      p.send(c.data, c.binary);
      const e = await p.next();
      codes.push(show(e));
    }
    p.send("ping");
    const pong = await p.next();
    if (pong.kind !== "pong")
      fail(`after 19 error frames the connection should still answer ping, got ${show(pong)} (${codes.join(", ")})`);
    p.send("[]");
    const rest = await p.drain(10_000);
    const shown = rest.map(show).join(", ");
    const shownCodes = rest.map((e) => (e.kind === "close" ? `close ${e.code}` : show(e))).join(", ");
    if (shownCodes !== "error bad_json, close 1008")
      fail(`the 20th error frame: expected "error bad_json, close 1008", got "${shown}"`);
  }
  // The bystander saw none of it; the history did not change.
  await sleep(300);
  checkBystander(o, bystander.take(), "A", []);
  const history1 = await historyNow(o);
  if (history0 !== null && history1 !== null && !sameList(history0, history1))
    fail(`bad frames changed the stored history (${history0.length} → ${history1.length} messages)`);
  o.log(`  A. bystander saw no message and no error; history unchanged; workerd RSS ${o.rss()} (${lap()})`);

  // B. Odd but valid.
  const expected: Message[] = [];
  {
    const p = await open("name=odd");
    if (p === null) return;
    const me = p.welcome?.you;
    for (const c of oddMessages()) {
      p.send(c.data);
      const e = await p.next();
      if (e.kind !== "frame" || e.frame.type !== "message") {
        fail(`${c.name}: expected the message back, got ${show(e)}`);
        continue;
      }
      const m = e.frame;
      const prev = expected.at(-1)?.id ?? history1?.at(-1)?.id ?? 0;
      if (m.text !== c.text)
        fail(
          `${c.name}: text came back as ${JSON.stringify(m.text.slice(0, 60))}, sent ${JSON.stringify(c.text.slice(0, 60))}`,
        );
      if (m.nonce !== c.nonce)
        fail(`${c.name}: nonce came back as ${JSON.stringify(m.nonce)}, sent ${JSON.stringify(c.nonce)}`);
      if (me === undefined || m.from.id !== me.id || m.from.name !== me.name)
        fail(`${c.name}: from is ${JSON.stringify(m.from)}, the sender is ${JSON.stringify(me)}`);
      if (m.id !== prev + 1) fail(`${c.name}: id ${m.id} after ${prev}`);
      if (m.ts < t0 - 60_000 || m.ts > Date.now() + 60_000) fail(`${c.name}: ts ${m.ts} is not the server's time`);
      expected.push(m);
    }
    p.close();
  }
  o.log(`  B. ${expected.length} odd but valid messages stored and echoed exactly (${lap()})`);

  // Invalid UTF-8 in a text frame. RFC 6455 says fail the connection (1007);
  // the contract names nothing. workerd hands the room a string decoded with
  // U+FFFD for every bad sequence, so the room cannot tell: accepted are
  // close 1007, an error frame, or the message stored with exactly that
  // lossy decoding (a note, not a violation). Never a lone surrogate.
  const utf8Cases: Array<{ name: string; data: Buffer }> = [
    { name: "0xff 0xfe", data: Buffer.from([0xff, 0xfe]) },
    {
      name: "0xff inside a message's text",
      data: Buffer.concat([
        Buffer.from('{"type":"message","text":"a'),
        Buffer.from([0xff]),
        Buffer.from('","nonce":"u8a"}'),
      ]),
    },
    {
      name: "CESU-8 lone surrogate inside text",
      data: Buffer.concat([
        Buffer.from('{"type":"message","text":"'),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from('","nonce":"u8b"}'),
      ]),
    },
    {
      name: "overlong slash inside text",
      data: Buffer.concat([
        Buffer.from('{"type":"message","text":"'),
        Buffer.from([0xc0, 0xaf]),
        Buffer.from('","nonce":"u8c"}'),
      ]),
    },
    {
      name: "truncated 3-byte sequence at the end",
      data: Buffer.concat([Buffer.from('{"type":"message","text":"x"}'), Buffer.from([0xe2, 0x82])]),
    },
  ];
  const utf8Seen: string[] = [];
  for (const c of utf8Cases) {
    const p = await open();
    if (p === null) return;
    p.send(c.data, false);
    const e = await p.next(5_000);
    utf8Seen.push(`${c.name}: ${show(e)}`);
    const lossy = new TextDecoder().decode(c.data);
    const parsed = ((): unknown => {
      try {
        return JSON.parse(lossy);
      } catch {
        return undefined;
      }
    })();
    const lossyText = typeof parsed === "object" && parsed !== null && "text" in parsed ? parsed.text : undefined;
    if (e.kind === "frame" && e.frame.type === "message") {
      if (e.frame.text !== lossyText)
        fail(
          `invalid UTF-8 (${c.name}): stored as ${JSON.stringify(e.frame.text)}, which is not even the lossy decoding ${JSON.stringify(lossyText)}`,
        );
      else
        o.findings.note(
          `fuzz: invalid UTF-8 in a text frame (${c.name}) is stored as ${JSON.stringify(e.frame.text)}: workerd decodes it lossily before the room sees it; RFC 6455 would close 1007 (documented in docs/PROTOCOL.md, "Invalid UTF-8")`,
        );
      expected.push(e.frame);
    } else {
      const fine =
        (e.kind === "close" && e.code === 1007) ||
        (e.kind === "frame" &&
          e.frame.type === "error" &&
          (e.frame.code === "bad_json" || e.frame.code === "invalid_message"));
      if (!fine)
        fail(
          `invalid UTF-8 (${c.name}): expected close 1007, an error frame or the lossily decoded message, got ${show(e)}`,
        );
    }
    p.terminate();
  }
  if (o.verbose) for (const line of utf8Seen) o.log(`    invalid UTF-8 ${line}`);
  o.log(
    `  B. invalid UTF-8 in text frames answered: ${[...new Set(utf8Seen.map((l) => l.slice(l.indexOf(": ") + 2).replace(/ #\d+/, " (stored)")))].join("; ")} (${lap()})`,
  );

  // C. Bursts, several rounds, so the RSS after each round shows whether
  // memory levels off or keeps climbing.
  const rounds: number[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    {
      const p = await open();
      if (p === null) return;
      const n = o.burstFrames;
      for (let k = 0; k < n; k++) p.send("{");
      const events = await p.drain(30_000);
      const shown = summarizeEvents(events);
      if (shown !== "error bad_json ×20, close 1008")
        fail(`${n} bad frames in a burst: expected "error bad_json ×20, close 1008", got "${shown}"`);
      if (round === 1 || o.verbose) o.log(`  C. ${n} bad frames at once: ${shown} (${lap()})`);
    }
    {
      const p = await open("name=burst");
      if (p === null) return;
      const n = o.burstFrames;
      for (let k = 0; k < n; k++) p.send(JSON.stringify({ type: "message", text: `burst ${k}`, nonce: `b${k}` }));
      const events = await p.drain(30_000);
      const shown = summarizeEvents(events);
      const accepted = events.flatMap((e) => (e.kind === "frame" && e.frame.type === "message" ? [e.frame] : []));
      const limited = events.filter(
        (e) => e.kind === "frame" && e.frame.type === "error" && e.frame.code === "rate_limited",
      ).length;
      const last = events.at(-1);
      const burst = p.welcome?.limits.burst ?? 10;
      if (limited !== 20 || last?.kind !== "close" || last.code !== 1008 || events.length !== accepted.length + 21) {
        fail(`${n} messages in a burst: expected messages, 20 rate_limited errors, close 1008; got ${shown}`);
      }
      if (accepted.length < Math.min(burst, 1) || accepted.length > burst + 25)
        fail(`${n} messages in a burst: ${accepted.length} accepted with a burst of ${burst}`);
      for (const [k, b] of accepted.entries()) {
        const a = accepted[k - 1];
        if (a === undefined) continue;
        if (b.id !== a.id + 1 || Number(b.nonce?.slice(1)) <= Number(a.nonce?.slice(1)))
          fail(`burst: message ${describe(b)} after ${describe(a)}`);
      }
      expected.push(...accepted);
      if (round === 1 || o.verbose) o.log(`  C. ${n} messages at once (burst ${burst}): ${shown} (${lap()})`);
    }
    {
      const p = await open();
      if (p === null) return;
      const n = o.burstFrames;
      for (let k = 0; k < n; k++) p.send("ping");
      let pongs = 0;
      let other = "";
      for (let k = 0; k < n; k++) {
        const e = await p.next(20_000);
        if (e.kind === "pong") pongs++;
        else {
          other = show(e);
          break;
        }
      }
      if (pongs !== n) fail(`${n} pings at once: ${pongs} pongs, then ${other}`);
      if (round === 1 || o.verbose) o.log(`  C. ${n} pings at once: ${pongs} pongs (${lap()})`);
      p.close();
    }
    await sleep(500);
    rounds.push(o.server.workerdRss().reduce((k, p) => k + p.rssKiB, 0));
  }
  const mib = (kib: number): string => (kib / 1024).toFixed(0);
  o.log(`  C. workerd RSS after each burst round: ${rounds.map(mib).join(", ")} MiB (${lap()})`);
  if (rounds.length >= 3) {
    const lastGrowth = (rounds.at(-1) ?? 0) - (rounds.at(-2) ?? 0);
    if (lastGrowth > LAST_ROUND_GROWTH_LIMIT_KIB)
      fail(
        `workerd RSS still grew ${mib(lastGrowth)} MiB in the last burst round (${rounds.map(mib).join(", ")} MiB): memory does not level off`,
      );
  }
  await sleep(300);
  checkBystander(o, bystander.take(), "B/C", expected);
  const history2 = await historyNow(o);
  if (history2 !== null && history1 !== null) {
    const want = [...history1, ...expected].slice(-(bystander.welcome?.limits.history ?? 100));
    if (!sameList(want, history2))
      fail(
        `history after the valid fuzz messages is not exactly them (${history2.length} stored, ${want.length} expected)`,
      );
  }
  o.log(
    `  B/C. bystander saw exactly the ${expected.length} accepted messages; history matches; workerd RSS ${o.rss()}`,
  );

  // D. Query parameters and the HTTP surface.
  await queryCases(o, base, bystander, history2 ?? [], fail);
  await httpCases(o, fail);
  await sleep(300);
  for (const e of bystander.take()) {
    if (
      e.kind === "pong" ||
      (e.kind === "frame" && (e.frame.type === "join" || e.frame.type === "leave" || e.frame.type === "presence"))
    )
      continue;
    fail(`D: the bystander got ${show(e)}`);
  }
  clearInterval(keepAlive);
  bystander.close();
  for (const p of fillers) p.close();

  await sleep(1_000);
  const rss1 = o.server.workerdRss();
  const growth = rss1.reduce((k, p) => k + p.rssKiB, 0) - rss0.reduce((k, p) => k + p.rssKiB, 0);
  o.log(
    `  workerd RSS after: ${o.rss()}; growth ${(growth / 1024).toFixed(0)} MiB over the fuzz run (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  );
  if (growth > RSS_GROWTH_LIMIT_KIB) fail(`workerd RSS grew by ${(growth / 1024).toFixed(0)} MiB during the fuzz run`);
}

function checkBystander(o: FuzzOptions, events: ProbeEvent[], phase: string, expected: Message[]): void {
  const got: Message[] = [];
  for (const e of events) {
    if (
      e.kind === "pong" ||
      (e.kind === "frame" && (e.frame.type === "join" || e.frame.type === "leave" || e.frame.type === "presence"))
    )
      continue;
    if (e.kind === "frame" && e.frame.type === "message") got.push(e.frame);
    else o.findings.violation(`fuzz ${phase}: the bystander got ${show(e)}`);
  }
  if (!sameList(got, expected)) {
    const extra = got.filter((m) => !expected.some((x) => sameMessage(x, m)));
    o.findings.violation(
      `fuzz ${phase}: the bystander got ${got.length} messages, expected ${expected.length}${extra.length ? `; unexpected: ${extra.slice(0, 3).map(describe).join("; ")}` : ""}`,
    );
  }
}

function sameList(a: Message[], b: Message[]): boolean {
  return (
    a.length === b.length &&
    a.every((m, i) => {
      const other = b[i];
      return other !== undefined && sameMessage(m, other);
    })
  );
}

function summarizeEvents(events: ProbeEvent[]): string {
  const out: Array<{ what: string; n: number }> = [];
  for (const e of events) {
    const what =
      e.kind === "frame" && e.frame.type === "message" ? "message" : e.kind === "close" ? `close ${e.code}` : show(e);
    const last = out[out.length - 1];
    if (last !== undefined && last.what === what) last.n++;
    else out.push({ what, n: 1 });
  }
  return out.map((x) => (x.n > 1 ? `${x.what} ×${x.n}` : x.what)).join(", ");
}

async function historyNow(o: FuzzOptions): Promise<Message[] | null> {
  const res = await fetch(`${o.server.url}/api/rooms/${o.room}/messages?after=0`);
  const page = narrowHistoryPage(await res.json());
  if (res.status !== 200 || !page.ok) {
    o.findings.violation(`fuzz: GET history answered ${res.status} ${page.ok ? "" : page.why}`);
    return null;
  }
  return page.value.messages;
}

const GUEST = /^guest-[a-z0-9]{4}$/;
const CONTROL = /\p{Cc}/u;
const LONE = /\p{Cs}/u;

async function queryCases(
  o: FuzzOptions,
  base: string,
  bystander: Probe,
  history: Message[],
  fail: (t: string) => void,
): Promise<void> {
  const kept = history.length;
  const lastId = history.at(-1)?.id ?? 0;
  // after=0 asks for everything from id 1, so it is a gap once id 1 is trimmed.
  const trimmed = (history[0]?.id ?? 1) > 1;
  // name: the raw query string, and the name expected (null: a guest name).
  const names: Array<[string, string | null]> = [
    ["name=%00bob", null],
    ["name=bob%7F", null],
    ["name=%C2%85nel", null],
    ["name=tab%09in", null],
    ["name=%20%20", null],
    ["name=", null],
    [`name=${"a".repeat(33)}`, null],
    [`name=${"a".repeat(32)}`, "a".repeat(32)],
    [`name=${encodeURIComponent("😀".repeat(32))}`, "😀".repeat(32)],
    [`name=${encodeURIComponent("😀".repeat(33))}`, null],
    ["name=%20bob%20", "bob"],
    ["name=__proto__", "__proto__"],
    ["name=constructor", "constructor"],
    ["name=%3Cb%3Ex%3C%2Fb%3E", "<b>x</b>"],
  ];
  let ok = 0;
  for (const [query, want] of names) {
    const p = await Probe.open(`${base}?${query}`);
    if (!(p instanceof Probe)) {
      fail(`?${query}: no welcome (${"status" in p ? p.status : p.error})`);
      continue;
    }
    const got = p.welcome?.you.name ?? "";
    if (want === null ? !GUEST.test(got) : got !== want)
      fail(
        `?${query.slice(0, 50)}: you.name is ${JSON.stringify(got)}, expected ${want === null ? "guest-xxxx" : JSON.stringify(want)}`,
      );
    else ok++;
    p.close();
  }
  // Percent-encoded ill-formed UTF-8 decodes to U+FFFD, which is a valid name;
  // what must never come out is a lone surrogate or a control character.
  for (const query of ["name=%ED%A0%80", "name=a%FFb", "name=%C0%80"]) {
    const p = await Probe.open(`${base}?${query}`);
    if (!(p instanceof Probe)) {
      fail(`?${query}: no welcome`);
      continue;
    }
    const got = p.welcome?.you.name ?? "";
    if (!GUEST.test(got) && (LONE.test(got) || CONTROL.test(got) || got.trim() !== got || got.length === 0))
      fail(`?${query}: you.name is ${JSON.stringify(got)}`);
    else ok++;
    p.close();
  }
  // after: only decimal digits count; beyond the last id means gap.
  const afters: Array<[string, boolean, number]> = [
    ["after=abc", false, kept],
    ["after=-1", false, kept],
    ["after=%2B5", false, kept],
    ["after=0x10", false, kept],
    ["after=1e3", false, kept],
    ["after=%205", false, kept],
    ["after=", false, kept],
    ["after=0", trimmed, kept],
    [`after=${lastId}`, false, 0],
    [`after=${Math.max(0, lastId - 3)}`, false, Math.min(3, lastId)],
    [`after=${lastId + 1}`, true, kept],
    ["after=99999999999999999999999", true, kept],
  ];
  for (const [query, gap, count] of afters) {
    const p = await Probe.open(`${base}?name=after&${query}`);
    if (!(p instanceof Probe) || p.welcome === null) {
      fail(`?${query}: no welcome`);
      continue;
    }
    const w = p.welcome;
    if (w.gap !== gap || w.history.length !== count)
      fail(`?${query}: welcome has ${w.history.length} messages, gap=${w.gap}; expected ${count}, gap=${gap}`);
    else ok++;
    p.close();
  }
  // token: a forged one gets a new identity; the bystander's own keeps its id.
  const mine = bystander.welcome;
  if (mine !== null) {
    const tokens: Array<[string, boolean]> = [
      [mine.token, true],
      [`${mine.token}x`, false],
      [mine.token.slice(0, -2), false],
      ["garbage", false],
      ["__proto__", false],
      ["a".repeat(5000), false],
    ];
    for (const [token, same] of tokens) {
      const p = await Probe.open(`${base}?name=tok&token=${encodeURIComponent(token)}`);
      if (!(p instanceof Probe) || p.welcome === null) {
        fail(
          `token ${token.slice(0, 20)}…: no welcome (${p instanceof Probe ? "" : "status" in p ? p.status : p.error})`,
        );
        continue;
      }
      if ((p.welcome.you.id === mine.you.id) !== same)
        fail(
          `token ${JSON.stringify(token.slice(0, 30))}: you.id ${p.welcome.you.id}, bystander ${mine.you.id}, expected ${same ? "the same" : "a new"} id`,
        );
      else ok++;
      p.close();
    }
  }
  o.log(`  D. ${ok} name/after/token query cases as the contract says`);
}

async function httpCases(o: FuzzOptions, fail: (t: string) => void): Promise<void> {
  const h = o.server.url;
  const cases: Array<{ path: string; init?: RequestInit; status: number; error?: string }> = [
    { path: `/api/rooms/${o.room}/messages?after=abc`, status: 200 },
    { path: `/api/rooms/${o.room}/messages?after=-5`, status: 200 },
    { path: "/api/rooms/__proto__/messages", status: 400, error: "invalid_room" },
    { path: `/api/rooms/${"a".repeat(65)}/messages`, status: 400, error: "invalid_room" },
    { path: "/api/rooms/a%00b/messages", status: 400, error: "invalid_room" },
    { path: "/chat/%00", status: 400, error: "invalid_room" },
    { path: "/chat/-x", status: 400, error: "invalid_room" },
    { path: `/chat/${o.room}`, status: 426, error: "upgrade_required" },
    {
      path: `/api/rooms/${o.room}/messages`,
      init: { method: "POST", body: "{}", headers: { "content-type": "application/json" } },
      status: 404,
    },
  ];
  let ok = 0;
  for (const c of cases) {
    const res = await fetch(`${h}${c.path}`, { ...c.init, signal: AbortSignal.timeout(10_000) });
    const body = await res.text();
    let error: unknown;
    try {
      const parsed: unknown = JSON.parse(body);
      error = typeof parsed === "object" && parsed !== null && "error" in parsed ? parsed.error : undefined;
    } catch {
      error = undefined;
    }
    if (res.status !== c.status)
      fail(`${c.init?.method ?? "GET"} ${c.path.slice(0, 60)}: ${res.status}, expected ${c.status}`);
    else if (c.status !== 200 && (c.error !== undefined ? error !== c.error : typeof error !== "string"))
      fail(
        `${c.init?.method ?? "GET"} ${c.path.slice(0, 60)}: body ${body.slice(0, 100)}, expected {"error":${c.error ?? "…"}}`,
      );
    else ok++;
  }
  o.log(`  D. ${ok}/${cases.length} HTTP edge cases as the contract says`);
}
