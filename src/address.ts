// Who is calling, as the per-address limits count it.
//
// Cloudflare's edge sets CF-Connecting-IP on every request it forwards to a
// Worker, overwriting whatever the client sent, so in production the header is
// always there and always the client's real address. One person easily holds
// a whole IPv6 /64 (a home router hands one to every household, and any host
// on it can pick a fresh address per connection), so an IPv6 address counts
// by its /64: otherwise every per-address limit could be walked around by
// rotating the low 64 bits.
//
// Without the header the request did not come through the edge: `wrangler
// dev` behind a proxy, a test, an internal caller. Sharing one bucket among
// all of those (v1's `unknown`) lets any one of them lock the others out, and
// giving each its own cannot be done without an address. So: a request to a
// loopback host is the developer's own machine and counts as one address,
// `loopback`; anywhere else the caller gets `null` and is refused.

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

export const LOOPBACK_KEY = "loopback";

/** The key per-address limits count `request` under; null when it has no address and is not local. */
export function addressKey(request: Request): string | null {
  const header = request.headers.get("CF-Connecting-IP");
  const key = header === null ? null : normalizeAddress(header);
  if (key !== null) return key;
  return LOOPBACK_HOSTS.has(new URL(request.url).hostname) ? LOOPBACK_KEY : null;
}

/**
 * An IPv4 address in dotted decimal, or the /64 of an IPv6 address as
 * `a:b:c:d::/64` (lower case, no leading zeros), so every spelling of one
 * address gives one key. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is
 * the IPv4 address it maps. Anything else is null.
 */
export function normalizeAddress(text: string): string | null {
  const trimmed = text.trim();
  if (trimmed.includes(":")) {
    const groups = parseIpv6(trimmed);
    if (groups === null) return null;
    if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
      const [, , , , , , high = 0, low = 0] = groups;
      return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
    }
    return `${groups
      .slice(0, 4)
      .map((g) => g.toString(16))
      .join(":")}::/64`;
  }
  const octets = parseIpv4(trimmed);
  return octets === null ? null : octets.join(".");
}

function parseIpv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const octets = parts.map((p) => (/^[0-9]{1,3}$/.test(p) ? Number(p) : Number.NaN));
  return octets.every((o) => o <= 255) ? octets : null;
}

/** The eight 16-bit groups of an IPv6 address in any RFC 4291 text form, or null. */
function parseIpv6(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const [before = "", after = ""] = halves;
  const head = groupsOf(before);
  const tail = halves.length === 2 ? groupsOf(after) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

function groupsOf(text: string): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1 && part.includes(".")) {
      const octets = parseIpv4(part);
      if (octets === null) return null;
      const [a = 0, b = 0, c = 0, d = 0] = octets;
      groups.push((a << 8) | b, (c << 8) | d);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return null;
    }
  }
  return groups;
}
