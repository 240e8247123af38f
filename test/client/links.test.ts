// Link finding in message text (public/js/links.js): only http(s) links become
// links, where a link ends follows the text around it, and the pieces always
// join back into exactly the text.

import { describe, expect, it } from "vitest";
import { linkify } from "../../public/js/links.js";

/** The links found, as [text, href]. */
function links(text: string): [string, string][] {
  return linkify(text).flatMap((p) => ("href" in p ? [[p.text, p.href] as [string, string]] : []));
}

describe("linkify", () => {
  it.each([
    [
      "see https://example.com/a?b=1&c=2#d now",
      [["https://example.com/a?b=1&c=2#d", "https://example.com/a?b=1&c=2#d"]],
    ],
    ["http://example.com", [["http://example.com", "http://example.com/"]]],
    ["HTTPS://EXAMPLE.COM/X", [["HTTPS://EXAMPLE.COM/X", "https://example.com/X"]]],
    // Trailing punctuation belongs to the sentence.
    ["go to https://example.com.", [["https://example.com", "https://example.com/"]]],
    [
      "https://example.com/a, https://example.com/b; ok?",
      [
        ["https://example.com/a", "https://example.com/a"],
        ["https://example.com/b", "https://example.com/b"],
      ],
    ],
    ["is it https://example.com/?!", [["https://example.com/", "https://example.com/"]]],
    ["“https://example.com/q”", [["https://example.com/q", "https://example.com/q"]]],
    // Brackets: the URL keeps the ones it opened.
    ["(see https://example.com/a)", [["https://example.com/a", "https://example.com/a"]]],
    ["(https://example.com/a).", [["https://example.com/a", "https://example.com/a"]]],
    [
      "https://en.wikipedia.org/wiki/Mercury_(planet)",
      [["https://en.wikipedia.org/wiki/Mercury_(planet)", "https://en.wikipedia.org/wiki/Mercury_(planet)"]],
    ],
    [
      "(https://en.wikipedia.org/wiki/Mercury_(planet))",
      [["https://en.wikipedia.org/wiki/Mercury_(planet)", "https://en.wikipedia.org/wiki/Mercury_(planet)"]],
    ],
    ["[https://example.com/x]", [["https://example.com/x", "https://example.com/x"]]],
    ["<https://example.com/x>", [["https://example.com/x", "https://example.com/x"]]],
    // A look-alike host: the href is the punycode the browser will really open.
    ["https://exаmple.com", [["https://exаmple.com", "https://xn--exmple-4nf.com/"]]],
  ])("%j", (text, want) => {
    expect(links(text)).toEqual(want);
  });

  it.each([
    "javascript:alert(1)",
    "javascript://example.com/%0Aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "example.com",
    "mail me at someone@example.com",
    "http://",
    "https:// example.com",
    "xhttps://example.com",
    "<b>not markup</b>",
  ])("no link in %j", (text) => {
    expect(links(text)).toEqual([]);
    expect(linkify(text)).toEqual([{ text }]);
  });

  it("a bidirectional control ends a link, so no link can reorder itself", () => {
    expect(links("https://example.com/\u202Egnp.exe")).toEqual([["https://example.com/", "https://example.com/"]]);
  });

  it("keeps every character: the pieces join back into the text", () => {
    const texts = [
      "",
      "plain",
      "a https://x.test/1 b http://y.test/2) c.",
      "((https://x.test/a_(b)_c)))...",
      `long ${`https://x.test/${"a".repeat(1900)}`} end`,
      "emoji 👩‍👩‍👧 https://x.test/ü?q=ß tail",
      "line\nhttps://x.test\n\n  indented",
    ];
    for (const text of texts)
      expect(
        linkify(text)
          .map((p) => p.text)
          .join(""),
      ).toBe(text);
    expect(links(texts[4]!)[0]![0]).toHaveLength(15 + 1900);
  });
});
