/**
 * Processing latency (created → terminal, whole milliseconds) counted in log-spaced bins,
 * four per doubling: bin 0 holds latencies under 1 ms (a worker's clock behind the API's
 * shows up here too), bin i in 1‥128 holds [2^((i-1)/4), 2^(i/4)) ms, and the last bin
 * holds 2^32 ms (49.7 days) and more. A percentile is found in the bin holding its exact
 * rank, and reported as the value of that bin closest, relatively, to all of its values;
 * `LATENCY_ERROR` states how far that can be from the exact value.
 */
export const LATENCY_BINS = 130;

const STEPS_PER_DOUBLING = 4;
const OVERFLOW_BIN = LATENCY_BINS - 1;
const OVERFLOW_MS = 2 ** 32;

// LOWEST[i]: the smallest whole millisecond in bin i (bins 1‥128 may hold none)
const LOWEST: readonly number[] = Array.from({ length: LATENCY_BINS + 1 }, (_, i) => {
  if (i === 0) return -Infinity;
  if (i >= OVERFLOW_BIN) return i === OVERFLOW_BIN ? OVERFLOW_MS : Infinity;
  return Math.ceil(2 ** ((i - 1) / STEPS_PER_DOUBLING));
});

/** The bin of a latency in milliseconds. */
export function latencyBin(ms: number): number {
  if (!(ms >= 1)) return 0;
  if (ms >= OVERFLOW_MS) return OVERFLOW_BIN;
  // the last bin whose lowest value is ≤ ms (empty bins share their lowest value with the next)
  let lo = 1;
  let hi = OVERFLOW_BIN - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (LOWEST[mid]! <= ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The value reported for a bin: for whole milliseconds L‥U, 2LU/(L+U) is the point with the
 * smallest largest relative distance to them, (U-L)/(U+L); rounded to whole milliseconds.
 */
export function latencyOfBin(bin: number): number {
  if (bin <= 0) return 0;
  if (bin >= OVERFLOW_BIN) return OVERFLOW_MS;
  const low = LOWEST[bin]!;
  const high = Math.max(low, LOWEST[bin + 1]! - 1);
  return Math.round((2 * low * high) / (low + high));
}

/** |reported − exact| ≤ relative × exact + absolute, for every exact latency below 2^32 ms. */
export const LATENCY_ERROR = { relative: 0.087, absolute_ms: 0.5 } as const;

export type LatencyHistogram = number[];

export const emptyHistogram = (): LatencyHistogram => new Array<number>(LATENCY_BINS).fill(0);

export interface LatencyPercentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Nearest-rank percentiles (the value at rank ⌈p·N/100⌉ in ascending order); null when empty. */
export function latencyPercentiles(histogram: readonly number[]): LatencyPercentiles {
  const total = histogram.reduce((sum, n) => sum + n, 0);
  const at = (p: number): number | null => {
    if (total <= 0) return null;
    const rank = Math.max(1, Math.ceil((p * total) / 100));
    let seen = 0;
    for (let bin = 0; bin < histogram.length; bin++) {
      seen += histogram[bin]!;
      if (seen >= rank) return latencyOfBin(bin);
    }
    return latencyOfBin(OVERFLOW_BIN);
  };
  return { p50: at(50), p95: at(95), p99: at(99) };
}
