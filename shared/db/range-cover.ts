import { DAY_MS, HOUR_MS } from './report-counters.js';

/**
 * One part of a time range, to be counted at a grain and added (sign 1) or taken away
 * (sign -1): from the counters (`day`, `hour`, `all`) or from the records themselves
 * (`raw`). `from` may be -Infinity and `to` Infinity (only on the coarsest part).
 */
export interface RangePiece {
  grain: 'all' | 'day' | 'hour' | 'raw';
  from: number;
  to: number;
  sign: 1 | -1;
}

const LEVELS: ReadonlyArray<['day' | 'hour', number]> = [
  ['day', DAY_MS],
  ['hour', HOUR_MS],
];

/** The grid point of `size` nearest to `ms` (the earlier one on a tie); infinities stay. */
function nearest(ms: number, size: number): number {
  if (!Number.isFinite(ms)) return ms;
  const below = Math.floor(ms / size) * size;
  return ms - below <= size / 2 ? below : below + size;
}

function cover(from: number, to: number, level: number, sign: 1 | -1, out: RangePiece[]): void {
  if (from >= to) return;
  const step = LEVELS[level];
  if (!step) {
    out.push({ grain: 'raw', from, to, sign });
    return;
  }
  const [grain, size] = step;
  // whole units between the grid points nearest to each end; what that adds or leaves
  // out at the ends is at most half a unit on each side, counted one grain finer
  const start = nearest(from, size);
  const end = nearest(to, size);
  if (start >= end) {
    cover(from, to, level + 1, sign, out);
    return;
  }
  out.push({ grain, from: start, to: end, sign });
  const flip = (sign === 1 ? -1 : 1) as 1 | -1;
  if (start < from) cover(start, from, level + 1, flip, out);
  else cover(from, start, level + 1, sign, out);
  if (end > to) cover(to, end, level + 1, flip, out);
  else cover(end, to, level + 1, sign, out);
}

/**
 * How to count the records created in [from, to) (either end may be open) with as few
 * rows as possible: whole days and hours from the counters, and at most half an hour at
 * each end from the records; a part slightly too large is corrected by taking away its
 * excess, so each end reads at most 12 hour rows and 30 minutes of records.
 */
export function coverRange(from: number | undefined, to: number | undefined): RangePiece[] {
  if (from === undefined && to === undefined) return [{ grain: 'all', from: -Infinity, to: Infinity, sign: 1 }];
  const out: RangePiece[] = [];
  cover(from ?? -Infinity, to ?? Infinity, 0, 1, out);
  return out;
}
