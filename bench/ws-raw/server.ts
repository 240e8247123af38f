// ws-raw: the smallest broadcast server Node can run with `ws`: one room,
// every frame re-sent as it came to every open socket, no storage, no JSON.
// The ceiling of one event loop for the same wire traffic as edge-chat.
import { WebSocketServer, WebSocket } from "ws";
import { numberFlag, parseCli, stringFlags } from "../../tools/harness/cli.ts";
import { rawWelcome } from "../fixture.ts";

const { port: rawPort } = parseCli(stringFlags("port"), "server.ts --port P");
const port = numberFlag(rawPort, Number.NaN, "port", 1);

const welcome = rawWelcome();
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws) => {
  ws.send(welcome);
  ws.on("message", (data, isBinary) => {
    for (const peer of wss.clients) {
      if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
    }
  });
  ws.on("error", () => ws.terminate());
});
wss.on("listening", () => console.log(`ws-raw ready on 127.0.0.1:${port}`));
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => process.exit(0));
