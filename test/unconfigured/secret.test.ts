// A deployment without SESSION_SECRET (see vitest.config.ts): the public
// development key may sign tokens only on the developer's own machine.

import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { HistoryPage } from "../../src/protocol.ts";
import { DEVELOPMENT_SECRET, verifyToken } from "../../src/token.ts";
import { Client, freshIp, freshRoom, upgradeHeaders } from "../helpers.ts";

function upgrade(base: string): Promise<Response> {
  return exports.default.fetch(new Request(`${base}/chat/${freshRoom()}`, { headers: upgradeHeaders() }));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("without SESSION_SECRET", () => {
  it.each(["http://localhost:8787", "http://127.0.0.1:8787", "http://[::1]:8787", "http://localhost"])(
    "signs tokens with the development key on the loopback host %s",
    async (base) => {
      const res = await upgrade(base);
      expect(res.status).toBe(101);
      const client = new Client(res.webSocket!);
      const welcome = await client.welcome();
      expect(await verifyToken(welcome.token, DEVELOPMENT_SECRET)).toBe(welcome.you.id);
      client.close();
    },
  );

  it.each(["https://chat.example", "http://localhost.chat.example", "http://10.0.0.1:8787", "https://[2001:db8::1]"])(
    "refuses upgrades on %s with 503 not_configured and logs which secret to set",
    async (base) => {
      const logged = vi.spyOn(console, "error");
      const res = await upgrade(base);
      expect(res.status).toBe(503);
      expect(res.webSocket).toBeNull();
      expect(await res.json()).toEqual({ error: "not_configured", message: expect.any(String) });
      const lines = logged.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>);
      const entry = lines.find((l) => l.event === "not_configured");
      expect(entry).toMatchObject({ level: "error", host: new URL(base).hostname });
      expect(entry?.message).toContain("wrangler secret put SESSION_SECRET");
    },
  );

  it("still answers the HTTP API, which signs nothing", async () => {
    const room = freshRoom();
    const req = new Request(`https://chat.example/api/rooms/${room}/messages`, {
      headers: { "CF-Connecting-IP": freshIp() },
    });
    const res = await exports.default.fetch(req);
    expect(res.status).toBe(200);
    const page: HistoryPage = { room, messages: [], gap: false };
    expect(await res.json()).toEqual(page);
  });
});
