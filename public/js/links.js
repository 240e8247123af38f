// @ts-check
// Finds the web links in a message's text. Only `http:` and `https:` links
// written out with `://` become links: a `javascript:` or `data:` URL, a bare
// `example.com`, an e-mail address stay text. The pieces joined back give
// the text exactly, so nothing but the links is turned into markup, and the
// renderer builds DOM nodes from them (never innerHTML).
//
// Where a link ends follows what people type around links (the same rules as
// GitHub's and Slack's autolinkers): trailing punctuation is the sentence's,
// not the URL's, and a closing bracket belongs to the URL only when the URL
// opened it, so "(see https://example.com/a)" links without the ")" while
// "https://en.wikipedia.org/wiki/Mercury_(planet)" keeps it.

/**
 * @typedef {{ text: string } | { text: string, href: string }} Piece
 * `href` is the parsed URL's own spelling (punycode host, escapes), which the
 * page shows on hover so a look-alike host cannot hide behind the text.
 */

// A URL runs to whitespace, an angle bracket or a quote; bidirectional
// controls end it too, so no link can hold characters that reorder it.
const CANDIDATE = /\bhttps?:\/\/[^\s<>"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/giu;
const TRAILING = /[.,:;!?'*_~\u2026\u2019\u201d\u00bb]$/u;
const PAIRS = /** @type {const} */ ([
  ["(", ")"],
  ["[", "]"],
  ["{", "}"],
]);

/**
 * @param {string} s
 * @param {string} c
 */
function count(s, c) {
  let n = 0;
  for (const x of s) if (x === c) n++;
  return n;
}

/**
 * Strips what ends the sentence rather than the URL, one character at a time
 * so "https://x.test/a)." loses both.
 * @param {string} url
 */
function trimEnd(url) {
  for (;;) {
    if (TRAILING.test(url)) {
      url = url.slice(0, -1);
      continue;
    }
    const pair = PAIRS.find(([, close]) => url.endsWith(close));
    if (pair !== undefined && count(url, pair[1]) > count(url, pair[0])) {
      url = url.slice(0, -1);
      continue;
    }
    return url;
  }
}

/**
 * @param {string} raw
 * @returns {string | null} the URL's href when it is a web address with a host
 */
function webHref(raw) {
  /** @type {URL} */
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") return null;
  return url.href;
}

/**
 * The text in pieces, links marked with their href.
 * @param {string} text
 * @returns {Piece[]}
 */
export function linkify(text) {
  /** @type {Piece[]} */
  const pieces = [];
  let from = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const start = match.index;
    const raw = trimEnd(match[0]);
    const href = webHref(raw);
    if (href === null) continue;
    if (start > from) pieces.push({ text: text.slice(from, start) });
    pieces.push({ text: raw, href });
    from = start + raw.length;
  }
  if (from < text.length) pieces.push({ text: text.slice(from) });
  return pieces;
}
