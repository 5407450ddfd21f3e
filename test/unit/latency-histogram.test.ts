import { expect } from 'chai';
import fc from 'fast-check';
import {
  LATENCY_BINS,
  LATENCY_ERROR,
  emptyHistogram,
  latencyBin,
  latencyOfBin,
  latencyPercentiles,
} from '../../shared/db/latency-histogram.js';

const withinBound = (reported: number, exact: number) =>
  Math.abs(reported - exact) <= LATENCY_ERROR.relative * exact + LATENCY_ERROR.absolute_ms;

describe('latency histogram', () => {
  it('bins are ordered, four per doubling, with under 1 ms and 2^32 ms or more at the ends', () => {
    expect(latencyBin(-5)).to.equal(0);
    expect(latencyBin(0)).to.equal(0);
    expect(latencyBin(1)).to.equal(1);
    expect(latencyBin(2)).to.equal(5);
    expect(latencyBin(1024)).to.equal(41);
    expect(latencyBin(2 ** 32 - 1)).to.equal(128);
    expect(latencyBin(2 ** 32)).to.equal(LATENCY_BINS - 1);
    let unordered = -1;
    for (let ms = 1; ms < 1_000_000 && unordered < 0; ms++) if (latencyBin(ms) < latencyBin(ms - 1)) unordered = ms;
    expect(unordered).to.equal(-1);
  });

  it('reports every whole millisecond below 2^32 within the documented bound', () => {
    // within a bin the error is largest at its lowest or highest whole millisecond: check those of every bin
    const lowestOf = (bin: number) => {
      let [lo, hi] = [0, 2 ** 32];
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (latencyBin(mid) >= bin) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    };
    let checked = 0;
    for (let bin = 1; bin < LATENCY_BINS - 1; bin++) {
      const [lowest, highest] = [lowestOf(bin), lowestOf(bin + 1) - 1];
      if (lowest > highest) continue; // a bin narrower than 1 ms can hold no whole millisecond
      for (const ms of [lowest, highest]) {
        expect(latencyBin(ms)).to.equal(bin);
        const reported = latencyOfBin(bin);
        expect(withinBound(reported, ms), `${ms} ms reported as ${reported}`).to.equal(true);
        checked++;
      }
    }
    expect(checked).to.be.above(200);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (ms) => withinBound(latencyOfBin(latencyBin(ms)), ms)),
      { numRuns: 10_000 },
    );
  });

  it('takes nearest-rank percentiles from the bin holding the rank', () => {
    const histogram = emptyHistogram();
    const values = [3, 5, 8, 13, 21, 34, 55, 89, 144, 233];
    for (const v of values) histogram[latencyBin(v)]! += 1;
    const p = latencyPercentiles(histogram);
    // ranks ⌈0.5·10⌉ = 5, ⌈9.5⌉ = 10, ⌈9.9⌉ = 10
    expect(p).to.deep.equal({
      p50: latencyOfBin(latencyBin(21)),
      p95: latencyOfBin(latencyBin(233)),
      p99: latencyOfBin(latencyBin(233)),
    });
    expect(latencyPercentiles(emptyHistogram())).to.deep.equal({ p50: null, p95: null, p99: null });
  });
});
