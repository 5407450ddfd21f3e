import type { RecordStatus } from './state-machine.js';

/** The record as the API shows it. */
export type JsonObject = Record<string, unknown>;

export interface RecordInput {
  source: string;
  category: string;
  payload: JsonObject;
}

export interface WorkflowRecord {
  id: string;
  source: string;
  category: string;
  payload: JsonObject;
  status: RecordStatus;
  result: JsonObject | null;
  error: string | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  processed_at: string | null;
}

export interface Transition {
  from: RecordStatus | null;
  to: RecordStatus;
  at: string;
  attempt: number;
  error: string | null;
  request_id: string | null;
  job_id: string | null;
  /** who made an operator's change: the fingerprint of its API key */
  actor: string | null;
}
