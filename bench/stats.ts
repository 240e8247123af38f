// Latency histograms and quantiles.

const BUCKET_MS = 0.01;
const MAX_MS = 30_000;

/** Latencies in 10 µs buckets up to 30 s: constant memory however many deliveries. */
export class Histogram {
  readonly #counts = new Uint32Array(Math.ceil(MAX_MS / BUCKET_MS) + 1);
  count = 0;
  max = 0;

  record(ms: number): void {
    const v = Math.max(ms, 0);
    const i = Math.min(Math.floor(v / BUCKET_MS), this.#counts.length - 1);
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.count++;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** The latency at quantile q (0..1), at the upper edge of its bucket. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i] ?? 0;
      if (seen >= rank) return Math.min((i + 1) * BUCKET_MS, this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    return { p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.max };
  }
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Quantile of a plain sample (sorted copy). */
export function quantileOf(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
