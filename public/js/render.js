// @ts-check
// Builds the DOM for messages, presence and system lines. Everything that
// came from a user (names, text) goes in through `textContent`, never
// innerHTML, so a message can only ever be text.

/** @typedef {import("../../src/protocol.ts").Message} Message */
/** @typedef {import("../../src/protocol.ts").User} User */

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const yearDayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "long" });

/** Messages from one person closer than this are drawn as one group. */
const GROUP_MS = 5 * 60_000;

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A display name as its own bidirectional island: a right-to-left name (or
 * any direction control an older server let through) cannot reorder the
 * words and the time drawn next to it.
 * @param {string} name
 * @param {string} [className]
 */
export function nameNode(name, className) {
  return el("bdi", className, name);
}

/** Hues that stay apart from each other and from the accent. */
const HUES = [205, 160, 28, 340, 190, 95, 12, 290, 45, 130];

/** A stable hue per user id, so a person keeps a colour across reloads. */
export function hue(/** @type {string} */ id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
  return HUES[h % HUES.length] ?? 205;
}

/** @param {User} user */
export function avatar(user) {
  const node = el("span", "avatar", Array.from(user.name.trim())[0]?.toUpperCase() ?? "?");
  node.style.setProperty("--hue", String(hue(user.id)));
  node.setAttribute("aria-hidden", "true");
  return node;
}

/** @param {number} ts */
function timeNode(ts) {
  const date = new Date(ts);
  const node = el("time", "", timeFormat.format(date));
  node.dateTime = date.toISOString();
  node.title = fullFormat.format(date);
  return node;
}

/** @param {number} ts */
function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** @param {number} ts */
function dayLabel(ts) {
  const d = new Date(ts);
  const now = new Date();
  if (dayKey(ts) === dayKey(now.getTime())) return "Today";
  if (dayKey(ts) === dayKey(now.getTime() - 86_400_000)) return "Yesterday";
  return d.getFullYear() === now.getFullYear() ? dayFormat.format(d) : yearDayFormat.format(d);
}

/**
 * Appends to the message log, remembering just enough about the last line
 * to group consecutive messages and to put a divider between days.
 */
export class LogWriter {
  /** @type {{ from: string | null, ts: number, day: string } | null} */
  #last = null;
  #log;

  /** @param {HTMLElement} log */
  constructor(log) {
    this.#log = log;
  }

  clear() {
    this.#log.replaceChildren();
    this.#last = null;
  }

  /**
   * @param {DocumentFragment | HTMLElement} into
   * @param {number} ts
   */
  #day(into, ts) {
    const day = dayKey(ts);
    if (this.#last?.day === day) return false;
    const line = el("div", "day");
    line.append(el("span", "", dayLabel(ts)));
    into.append(line);
    return true;
  }

  /**
   * Many messages in one DOM insertion (a history page is up to 100).
   * @param {Message[]} messages
   * @param {string | undefined} me
   */
  messages(messages, me) {
    const frag = document.createDocumentFragment();
    for (const m of messages) this.#message(frag, m, me);
    this.#log.append(frag);
  }

  /**
   * @param {DocumentFragment} frag
   * @param {Message} m
   * @param {string | undefined} me
   */
  #message(frag, m, me) {
    const newDay = this.#day(frag, m.ts);
    const own = m.from.id === me;
    const cont = !newDay && this.#last?.from === m.from.id && m.ts - this.#last.ts < GROUP_MS;
    this.#last = { from: m.from.id, ts: m.ts, day: dayKey(m.ts) };

    const item = el("article", `msg${own ? " own" : ""}${cont ? " cont" : ""}`);
    item.dataset.id = String(m.id);
    item.dataset.from = m.from.id;
    if (m.nonce !== undefined) item.dataset.nonce = m.nonce;

    const meta = el("header", "meta");
    const author = nameNode(m.from.name, "author");
    meta.append(author);
    if (own) meta.append(el("span", "you", "(you)"));
    meta.append(" ", timeNode(m.ts));

    const bubble = el("div", "bubble");
    bubble.title = fullFormat.format(new Date(m.ts));
    bubble.append(el("p", "text", m.text));

    if (own) item.append(meta, bubble);
    else {
      const side = el("div", "side");
      if (!cont) side.append(avatar(m.from));
      const body = el("div", "body");
      body.append(meta, bubble);
      item.append(side, body);
    }
    frag.append(item);
  }

  /**
   * A quiet line: someone joined or left, a gap, a reset.
   * @param {string | (string | Node)[]} text  names go in as nameNode()
   * @param {number} ts
   * @param {string} [kind]
   */
  system(text, ts, kind = "presence") {
    const frag = document.createDocumentFragment();
    this.#day(frag, ts);
    const line = el("div", `system ${kind}`);
    const span = el("span");
    span.append(...(typeof text === "string" ? [text] : text));
    line.append(span, " ", timeNode(ts));
    frag.append(line);
    this.#log.append(frag);
    this.#last = { from: null, ts, day: dayKey(ts) };
  }
}

/**
 * @param {string} text
 * @param {string} nonce
 */
export function pendingItem(text, nonce) {
  const item = el("li", "msg own pending");
  item.dataset.nonce = nonce;
  const bubble = el("div", "bubble");
  bubble.append(el("p", "text", text));
  item.append(bubble, el("span", "pending-state"));
  return item;
}

/**
 * @param {User} user
 * @param {boolean} own
 */
export function personItem(user, own) {
  const item = el("li", own ? "person own" : "person");
  item.dataset.id = user.id;
  item.append(avatar(user), nameNode(user.name, "name"));
  if (own) item.append(el("span", "you", "(you)"));
  return item;
}
