// Sleeping and bounded waiting, for tools that poll for a condition.

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` until it holds or `ms` pass; false on timeout. Bounded by construction. */
export async function waitUntil(done: () => boolean, ms: number, stepMs = 25): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() >= end) return false;
    await sleep(stepMs);
  }
  return true;
}
