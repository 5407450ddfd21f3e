import { expect } from 'chai';
import { UnrecoverableError } from 'bullmq';
import { defaultProcessor } from '../../worker/processors/index.js';
import type { WorkflowRecord } from '../../shared/index.js';

const withPayload = (payload: Record<string, unknown>): WorkflowRecord => ({
  id: '00000000-0000-4000-8000-000000000000',
  source: 's',
  category: 'c',
  payload,
  status: 'pending',
  result: null,
  error: null,
  attempts: 0,
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-01T00:00:00.000Z',
  processed_at: null,
});

describe('default processor', () => {
  const cases: Array<[unknown, string, number]> = [
    [undefined, 'low', 0],
    [0, 'low', 0],
    [1.9, 'low', 1.9],
    [-3, 'low', -3],
    [2, 'medium', 2],
    [3, 'medium', 3],
    [3.5, 'medium', 3.5],
    [4, 'high', 4],
    [10, 'high', 10],
    ['5', 'high', 5],
    [' 2 ', 'medium', 2],
    ['1e0', 'low', 1],
  ];
  for (const [priority, classification, score] of cases) {
    it(`priority ${JSON.stringify(priority)} → ${classification}, score ${score}`, async () => {
      const payload = priority === undefined ? {} : { priority };
      expect(await defaultProcessor(withPayload(payload))).to.deep.equal({ classification, score });
    });
  }

  for (const priority of ['urgent', '', '  ', null, true, [], {}, '3x']) {
    it(`priority ${JSON.stringify(priority)} is a permanent "invalid priority" failure`, () => {
      expect(() => defaultProcessor(withPayload({ priority }))).to.throw(UnrecoverableError, 'invalid priority');
    });
  }
});
