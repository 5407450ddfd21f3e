import { expect } from 'chai';
import fc from 'fast-check';
import { coverRange } from '../../shared/db/range-cover.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** How many times the pieces count the instant `t` (added minus taken away). */
function coverage(pieces: ReturnType<typeof coverRange>, t: number): number {
  return pieces.reduce((n, p) => n + (t >= p.from && t < p.to ? p.sign : 0), 0);
}

describe('coverRange', () => {
  const instant = fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2027, 0, 1) });
  const end = fc.option(instant, { nil: undefined });

  it('counts every instant of [from, to) once and every other instant not at all', () => {
    fc.assert(
      fc.property(end, end, fc.array(instant, { minLength: 20, maxLength: 20 }), (a, b, probes) => {
        const [from, to] = a !== undefined && b !== undefined && a > b ? [b, a] : [a, b];
        const pieces = coverRange(from, to);
        const edges = [from, to].filter((x): x is number => x !== undefined).flatMap((x) => [x - 1, x, x + 1]);
        for (const t of [...probes, ...edges]) {
          const inside = (from === undefined || t >= from) && (to === undefined || t < to);
          expect(coverage(pieces, t), `t=${t} in [${from}, ${to})`).to.equal(inside ? 1 : 0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('reads at most 30 minutes of records and 12 hour rows at each end', () => {
    fc.assert(
      fc.property(instant, instant, (a, b) => {
        const [from, to] = a > b ? [b, a] : [a, b];
        const pieces = coverRange(from, to);
        const raw = pieces.filter((p) => p.grain === 'raw').reduce((ms, p) => ms + (p.to - p.from), 0);
        const hours = pieces.filter((p) => p.grain === 'hour').reduce((n, p) => n + (p.to - p.from) / HOUR, 0);
        expect(raw).to.be.at.most(HOUR);
        expect(hours).to.be.at.most(24);
        for (const p of pieces) {
          if (p.grain === 'hour') expect(p.from % HOUR).to.equal(0);
          if (p.grain === 'day') expect([p.from % DAY, p.to % DAY]).to.deep.equal([0, 0]);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('uses the all-time counters for an open range', () => {
    expect(coverRange(undefined, undefined)).to.deep.equal([{ grain: 'all', from: -Infinity, to: Infinity, sign: 1 }]);
  });
});
