// The address key every per-address limit counts by.

import { describe, expect, it } from "vitest";
import { LOOPBACK_KEY, addressKey, normalizeAddress } from "../src/address.ts";

describe("normalizeAddress", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    [" 203.0.113.7 ", "203.0.113.7"],
    ["2001:db8:0:1::1", "2001:db8:0:1::/64"],
    ["2001:DB8:0:1:FFFF:FFFF:FFFF:FFFF", "2001:db8:0:1::/64"],
    ["2001:0db8:0000:0001:0000:0000:0000:0009", "2001:db8:0:1::/64"],
    ["2001:db8::1:2:3:4", "2001:db8:0:0::/64"],
    ["2001:db8:0:1:2::", "2001:db8:0:1::/64"],
    ["::", "0:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1:2:3:4", "fe80:0:0:0::/64"],
    ["2001:db8:0:1:1:2:192.0.2.1", "2001:db8:0:1::/64"],
    ["::ffff:198.51.100.9", "198.51.100.9"],
    ["::FFFF:c633:6409", "198.51.100.9"],
    ["0:0:0:0:0:ffff:198.51.100.9", "198.51.100.9"],
  ])("keys %s as %s", (text, key) => {
    expect(normalizeAddress(text)).toBe(key);
  });

  it.each([
    "",
    "unknown",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-4",
    "0x1.2.3.4",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "12345::",
    "g::1",
    "::ffff:1.2.3.256",
    "1:2:3:4:5:6:7::8",
  ])("refuses %j", (text) => {
    expect(normalizeAddress(text)).toBeNull();
  });
});

describe("addressKey", () => {
  const req = (url: string, ip?: string) =>
    new Request(url, { headers: ip === undefined ? {} : { "CF-Connecting-IP": ip } });

  it("keys a request by CF-Connecting-IP, an IPv6 address by its /64", () => {
    expect(addressKey(req("https://chat.example/chat", "198.51.100.9"))).toBe("198.51.100.9");
    expect(addressKey(req("https://chat.example/chat", "2001:db8:0:1::9"))).toBe(
      addressKey(req("https://chat.example/chat", "2001:DB8:0:1:a:b:c:d")),
    );
    expect(addressKey(req("https://chat.example/chat", "2001:db8:0:2::9"))).not.toBe(
      addressKey(req("https://chat.example/chat", "2001:db8:0:1::9")),
    );
  });

  it("keys a request to a loopback host without a usable address as loopback", () => {
    for (const url of ["http://localhost:8787/chat", "http://127.0.0.1:8787/chat", "http://[::1]:8787/chat"]) {
      expect(addressKey(req(url))).toBe(LOOPBACK_KEY);
      expect(addressKey(req(url, "not an address"))).toBe(LOOPBACK_KEY);
    }
    expect(addressKey(req("http://127.0.0.1:8787/chat", "127.0.0.1"))).toBe("127.0.0.1");
  });

  it("has no key for a request to any other host without a usable address", () => {
    for (const url of [
      "https://chat.example/chat",
      "http://localhost.example/chat",
      "http://127.0.0.2/chat",
      "http://10.0.0.1/chat",
    ]) {
      expect(addressKey(req(url))).toBeNull();
      expect(addressKey(req(url, "unknown"))).toBeNull();
    }
  });
});
