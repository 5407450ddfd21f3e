import type { RecordStatus } from './state-machine.js';

/** What a record change is called, in webhooks and in the event stream alike. */
export const EVENT_TYPES = ['record.created', 'record.processed', 'record.failed', 'record.retried'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One event of the stored log, as `GET /events` sends it (`id` travels as the SSE `id:`). */
export interface RecordEvent {
  id: number;
  type: EventType;
  data: {
    record_id: string;
    category: string;
    source: string;
    from: RecordStatus | null;
    to: RecordStatus;
    at: string;
    attempt: number;
    error: string | null;
  };
}

/** The Redis pub/sub channel on which writers say that the event log grew (its payload is not read). */
export const eventsChannel = (prefix: string): string => `${prefix}:events`;
