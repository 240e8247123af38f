// The end-to-end tests' dev server: the harness's `wrangler dev`, ready once
// the page itself is served (the static assets, not only the Worker).
import { DevServer } from "../../tools/harness/devserver.ts";

/** `vars` override wrangler.toml's [vars] (wrangler's `--var NAME:VALUE`). */
export function startDevServer(vars: Readonly<Record<string, string>> = {}): Promise<DevServer> {
  return DevServer.start({
    name: "wrangler dev (e2e)",
    ready: { path: "/", status: 200 },
    readyTimeoutMs: 120_000,
    vars,
  });
}
