// Writes docs/screenshot.png, the picture in the README: three people chat
// in #ops, and Alice's desktop view (light) and Bob's phone view (dark) are
// put side by side. `npm run screenshot`; it starts its own `wrangler dev`
// and Chromium and stops both, whatever happens.

import { writeFileSync } from "node:fs";
import { ChatPage, launchBrowser } from "./support/chat.ts";
import { startDevServer } from "./support/devserver.ts";

const OUT = new URL("../docs/screenshot.png", import.meta.url).pathname;

const [server, browser] = await Promise.all([startDevServer(), launchBrowser()]);
try {
  const room = "ops";
  const alice = await ChatPage.open(browser, server.url, room, "Alice", { viewport: { width: 960, height: 620 } });
  const bob = await ChatPage.open(browser, server.url, room, "Bob", {
    viewport: { width: 390, height: 620 },
    colorScheme: "dark",
  });
  const carol = await ChatPage.open(browser, server.url, room, "Carol");
  const script: [ChatPage, string][] = [
    [alice, "Morning! Is the new build on the edge yet?"],
    [bob, "Rolled out to every region at 09:12.\np50 latency went from 41 ms to 18 ms."],
    [alice, "Nice. Any errors in the logs?"],
    [carol, "Nothing on my side, the dashboards are all green."],
    [bob, "None so far. I'll keep an eye on it through lunch."],
    [alice, "Perfect, thanks both!"],
  ];
  for (const [who, text] of script) {
    await who.send(text);
    await alice.waitForMessage(text);
    await bob.waitForMessage(text);
  }
  const shots: string[] = [];
  for (const p of [alice, bob]) {
    await p.page.locator("#message").blur();
    await p.page.waitForFunction(
      () => document.activeElement === document.body && document.querySelectorAll("#pending > *").length === 0,
    );
    shots.push((await p.page.screenshot({ animations: "disabled", caret: "hide" })).toString("base64"));
  }
  const frame = await browser.newPage({ viewport: { width: 1430, height: 700 } });
  await frame.setContent(`<body style="margin:0;display:flex;gap:24px;align-items:center;justify-content:center;height:100vh;background:linear-gradient(135deg,#e9e7ff,#dff5f1)">
    ${shots.map((b64) => `<img src="data:image/png;base64,${b64}" style="border-radius:14px;box-shadow:0 10px 40px rgb(30 30 80/25%)">`).join("")}</body>`);
  await frame.waitForFunction(() => Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0));
  writeFileSync(OUT, await frame.screenshot());
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await server.dispose();
}
