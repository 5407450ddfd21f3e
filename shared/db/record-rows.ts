import type { JsonObject, WorkflowRecord } from '../records.js';
import type { RecordStatus } from '../state-machine.js';
import { iso, isoOrNull } from './sql.js';

/** A row of the records table as the drivers return it. */
export interface RecordRow {
  id: string;
  source: string;
  category: string;
  payload: string;
  status: RecordStatus;
  result: string | null;
  error: string | null;
  attempts: number;
  queue_seq: number;
  queued_at: number | string | null;
  queued_request_id: string | null;
  created_at: number | string;
  updated_at: number | string;
  processed_at: number | string | null;
}

/** `payload` when the caller already holds it parsed (a record just inserted). */
export function toRecord(row: RecordRow, payload?: JsonObject): WorkflowRecord {
  return {
    id: row.id,
    source: row.source,
    category: row.category,
    payload: payload ?? (JSON.parse(row.payload) as JsonObject),
    status: row.status,
    result: row.result === null ? null : (JSON.parse(row.result) as JsonObject),
    error: row.error,
    attempts: Number(row.attempts),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    processed_at: isoOrNull(row.processed_at),
  };
}
