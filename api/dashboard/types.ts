/** The API's answers, as far as the page reads them. */
export type Status = 'pending' | 'processed' | 'failed';

export interface WorkflowRecord {
  id: string;
  source: string;
  category: string;
  payload: Record<string, unknown>;
  status: Status;
  result: Record<string, unknown> | null;
  error: string | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  processed_at: string | null;
}

export interface Transition {
  from: Status | null;
  to: Status;
  at: string;
  attempt: number;
  error: string | null;
  request_id: string | null;
  job_id: string | null;
  actor: string | null;
}

export interface Counts {
  pending: number;
  processed: number;
  failed: number;
}

export interface Latency {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface Summary {
  totals: Counts & { all: number };
  by_category: Array<Counts & { category: string; count: number }>;
  category_count: number;
  latency_ms: Latency;
}

export interface Timeseries {
  series: Array<{ t: string; created: number; processed: number; failed: number }>;
}

export interface LatencySeries {
  series: Array<Latency & { t: string; count: number }>;
}

export interface Health {
  queue: { status: string; waiting?: number; active?: number; workers?: number };
  database: { status: string };
}

export interface RecordsPage {
  items: WorkflowRecord[];
  total: number;
  next_cursor: string | null;
}

export interface FailuresReport {
  total: number;
  group_count: number;
  groups: Array<{ error: string | null; count: number; first_seen: string | null; last_seen: string | null }>;
}
