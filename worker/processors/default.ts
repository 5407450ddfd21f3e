import { UnrecoverableError } from 'bullmq';
import type { JsonObject, WorkflowRecord } from '../../shared/index.js';

function numericPriority(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return null;
}

/** For categories without a processor of their own: classify by `payload.priority`. */
export const defaultProcessor = (record: WorkflowRecord): JsonObject => {
  const { priority } = record.payload;
  let score = 0;
  if (priority !== undefined) {
    const numeric = numericPriority(priority);
    if (numeric === null) throw new UnrecoverableError('invalid priority');
    score = numeric;
  }
  const classification = score >= 4 ? 'high' : score >= 2 ? 'medium' : 'low';
  return { classification, score };
};
