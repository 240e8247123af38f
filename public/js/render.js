// @ts-check
// Builds the DOM for messages, presence and system lines. Everything that
// came from a user (names, text) goes in through `textContent`, never
// innerHTML, so a message can only ever be text and the links linkify()
// finds in it (an <a> built here, its href the parsed URL's).

import { linkify } from "./links.js";
import { shortId } from "./state.js";

/** @typedef {import("./frames.js").Message} Message */
/** @typedef {import("./frames.js").User} User */

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

/**
 * What the log needs to know about this page's user to draw a message.
 * @typedef {object} View
 * @property {string | undefined} me  this page's user id
 * @property {(fromId: string) => boolean} canDelete  whether a message by that user shows a delete button
 * @property {(user: User) => boolean} ambiguous  whether that user's name needs its short id to be told apart
 */

const SVG = "http://www.w3.org/2000/svg";

/**
 * A small inline icon (the page's CSP allows no inline markup, so it is built).
 * @param {string} d  path data
 */
function icon(d) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

/** The host application vouches for this user (a verified JWT). */
function badge() {
  const node = el("span", "badge");
  node.setAttribute("role", "img");
  node.setAttribute("aria-label", "verified");
  node.title = "Verified: signed in through the site";
  node.append(icon("M5 12.5l4.5 4.5L19 7"));
  return node;
}

/**
 * A user's name as the page shows it next to a message or in the people
 * list: the name isolated, a badge when verified, the short id when another
 * person online has a name that reads the same, and the id on hover always.
 * @param {User} user
 * @param {string} className  for the name itself
 * @param {boolean} ambiguous
 */
export function userNodes(user, className, ambiguous) {
  const name = nameNode(user.name, className);
  name.title = `${user.name} · id …${shortId(user.id)}${user.verified === true ? " · verified" : ""}`;
  /** @type {Node[]} */
  const nodes = [name];
  if (user.verified === true) nodes.push(badge());
  if (ambiguous) nodes.push(el("span", "short-id", `#${shortId(user.id)}`));
  return nodes;
}

/**
 * A message's text: plain text with its web links made clickable. They open
 * in a new tab (the page may be framed) without telling the target who sent
 * the visitor (`noreferrer`), giving it this window (`noopener`), or lending
 * it the room's reputation (`nofollow`, links are anyone's).
 * @param {string} text
 */
export function textNode(text) {
  const p = el("p", "text");
  for (const piece of linkify(text)) {
    if (!("href" in piece)) {
      p.append(piece.text);
      continue;
    }
    const a = el("a", "link", piece.text);
    a.href = piece.href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    a.referrerPolicy = "no-referrer";
    // A URL reads left to right whatever the text around it; the hover shows the parsed address (punycode host).
    a.dir = "ltr";
    a.title = piece.href;
    p.append(a);
  }
  return p;
}

/** @param {HTMLElement} bubble */
function markDeleted(bubble) {
  bubble.replaceChildren(el("p", "text deleted", "message deleted"));
  bubble.closest(".msg")?.classList.add("deleted");
}

/** A delete button for one message; app.js handles its clicks for the whole log. */
function deleteButton() {
  const b = el("button", "msg-action");
  b.type = "button";
  b.dataset.action = "delete";
  b.setAttribute("aria-label", "Delete message");
  b.title = "Delete message";
  b.append(icon("M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3"), el("span", "confirm", "Delete?"));
  return b;
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
   * @param {View} view
   */
  messages(messages, view) {
    const frag = document.createDocumentFragment();
    for (const m of messages) this.#message(frag, m, view);
    this.#log.append(frag);
  }

  /**
   * Message `id` became a tombstone: it stays in its place, says so, and
   * loses its delete button.
   * @param {number} id
   */
  tombstone(id) {
    const item = this.#log.querySelector(`.msg[data-id="${id}"]`);
    const bubble = item?.querySelector(".bubble");
    if (!(bubble instanceof HTMLElement)) return;
    markDeleted(bubble);
    item?.querySelector(".msg-action")?.remove();
  }

  /**
   * Who may delete what changed (a new identity after a reconnect): every
   * message's delete button again.
   * @param {View} view
   */
  actions(view) {
    for (const item of this.#log.querySelectorAll(".msg[data-id]")) {
      if (!(item instanceof HTMLElement)) continue;
      const has = item.querySelector(".msg-action");
      const want = !item.classList.contains("deleted") && view.canDelete(item.dataset.from ?? "");
      if (want && has === null) item.querySelector(".bubble-row")?.append(deleteButton());
      else if (!want) has?.remove();
    }
  }

  /**
   * @param {DocumentFragment} frag
   * @param {Message} m
   * @param {View} view
   */
  #message(frag, m, view) {
    const me = view.me;
    const newDay = this.#day(frag, m.ts);
    const own = m.from.id === me;
    const cont = !newDay && this.#last?.from === m.from.id && m.ts - this.#last.ts < GROUP_MS;
    this.#last = { from: m.from.id, ts: m.ts, day: dayKey(m.ts) };

    const item = el("article", `msg${own ? " own" : ""}${cont ? " cont" : ""}`);
    item.dataset.id = String(m.id);
    item.dataset.from = m.from.id;
    if (m.nonce !== undefined) item.dataset.nonce = m.nonce;

    const meta = el("header", "meta");
    meta.append(...userNodes(m.from, "author", view.ambiguous(m.from)));
    if (own) meta.append(el("span", "you", "(you)"));
    meta.append(" ", timeNode(m.ts));

    const bubble = el("div", "bubble");
    bubble.title = fullFormat.format(new Date(m.ts));
    if (m.deleted === true) markDeleted(bubble);
    else bubble.append(textNode(m.text));
    if (m.deleted === true) item.classList.add("deleted");
    // The button sits beside the bubble, so showing it on hover or focus moves nothing.
    const row = el("div", "bubble-row");
    row.append(bubble);
    if (m.deleted !== true && view.canDelete(m.from.id)) row.append(deleteButton());

    if (own) item.append(meta, row);
    else {
      const side = el("div", "side");
      if (!cont) side.append(avatar(m.from));
      const body = el("div", "body");
      body.append(meta, row);
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
 * @param {{ own: boolean, ambiguous: boolean, canBan: boolean }} opts
 */
export function personItem(user, { own, ambiguous, canBan }) {
  const item = el("li", own ? "person own" : "person");
  item.dataset.id = user.id;
  item.append(avatar(user), ...userNodes(user, "name", ambiguous));
  if (own) item.append(el("span", "you", "(you)"));
  if (canBan) {
    const b = el("button", "person-action", "Ban");
    b.type = "button";
    b.dataset.action = "ban";
    b.setAttribute("aria-label", `Ban ${user.name}`);
    item.append(b);
  }
  return item;
}
