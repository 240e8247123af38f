// What every server in the benchmark is sent and, for the reference servers,
// what they answer on connect. No Node or Workers APIs here: the do-raw
// worker bundles this file and the load generator imports it.

/** Characters in every benchmark message text, a typical chat line. */
export const TEXT_LENGTH = 96;
/** Messages in a full history (edge-chat's HISTORY_SIZE default). */
export const HISTORY_MESSAGES = 100;
export const TEXT_PREFIX = "bench ";

/**
 * The text of one benchmark message: sender, per-sender sequence number and
 * the send time (performance.now() of the load generator), padded to
 * TEXT_LENGTH so every server moves the same bytes.
 */
export function benchText(sender: number, seq: number, sentAt: number): string {
  const head = `${TEXT_PREFIX}${sender} ${seq} ${sentAt.toFixed(3)} `;
  return head.length >= TEXT_LENGTH ? head : head + "x".repeat(TEXT_LENGTH - head.length);
}

/** The client frame of the edge-chat protocol; the raw servers relay it as it is. */
export function messageFrame(sender: number, seq: number, sentAt: number): string {
  return `{"type":"message","text":"${benchText(sender, seq, sentAt)}","nonce":"${sender}-${seq}"}`;
}

/**
 * The reference servers' answer on connect: a constant string the size and
 * shape of edge-chat's `welcome` with a full history, so the connect storm
 * moves the same bytes without any storage or JSON work on the server.
 */
export function rawWelcome(): string {
  const history: string[] = [];
  for (let id = 1; id <= HISTORY_MESSAGES; id++) {
    history.push(
      `{"type":"message","id":${id},"ts":1795457361742,"from":{"id":"u_0000000000000000","name":"bench"},` +
        `"text":"${benchText(0, id, 0)}","nonce":"0-${id}"}`,
    );
  }
  return (
    `{"type":"welcome","room":"bench","you":{"id":"u_0000000000000000","name":"bench"},"token":"raw",` +
    `"online":[],"history":[${history.join(",")}],"gap":false,` +
    `"limits":{"history":100,"text":2000,"name":32,"burst":10,"perSec":5}}`
  );
}
