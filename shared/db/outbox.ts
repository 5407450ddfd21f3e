import type { Knex } from 'knex';
import { v7 as uuidv7 } from 'uuid';
import type { EventType } from '../events.js';
import type { WorkflowRecord } from '../records.js';
import type { RecordStatus } from '../state-machine.js';
import type { Dialect } from './knex.js';
import { iso, rowsOf, type Writes } from './sql.js';

/** One change of a record, as the event log and the webhooks report it. */
export interface RecordChange {
  type: EventType;
  recordId: string;
  category: string;
  source: string;
  from: RecordStatus | null;
  to: RecordStatus;
  attempt: number;
  error: string | null;
}

/** A delivery's job: the job id is `<deliveryId>-<seq>`. */
export interface DeliveryJob {
  deliveryId: string;
  seq: number;
}

/** What one committed transaction added: events (so streams read on) and deliveries (to enqueue). */
export interface OutboxWritten {
  events: number;
  deliveries: DeliveryJob[];
}

type Listener = (written: OutboxWritten) => void;

interface SubscriptionRow {
  id: string;
  events: string;
  categories: string | null;
}

const EVENT_COLUMNS = ['type', 'record_id', 'category', 'source', 'from_status', 'to_status', 'at', 'attempt', 'error'];
const DELIVERY_COLUMNS = [
  'id',
  'subscription_id',
  'event',
  'record_id',
  'body',
  'status',
  'attempts',
  'job_seq',
  'created_at',
  'next_attempt_at',
];
const ENABLED_SUBSCRIPTIONS = 'SELECT id, events, categories FROM webhook_subscriptions WHERE enabled = ?';
// any constant: the one lock every event-writing transaction takes on PostgreSQL
const EVENT_LOG_LOCK = 74_201_006;

/**
 * The outbox: every transaction that changes records calls `write` last, which queues
 * on its writes one event per change and one delivery per matching enabled
 * subscription, so neither can be lost once the change is committed. After the commit
 * the writer calls `committed`, and the listeners enqueue the deliveries and tell the
 * event streams (both best effort: the reconciler and the streams' own reads repair a
 * missed one).
 *
 * On PostgreSQL the event ids must become visible in the order they were given, or a
 * stream reading `id > n` could pass an id whose transaction commits later: a
 * transaction-scoped advisory lock, taken just before the insert, holds every other
 * writer's insert until this commit. SQLite has a single writer anyway.
 */
export class Outbox {
  private readonly listeners = new Set<Listener>();

  constructor(private readonly dialect: Dialect) {}

  async write(
    writes: Writes,
    changes: readonly RecordChange[],
    at: number,
    /** the records as they are after the changes, read only when a subscription wants them */
    recordsOf: (ids: string[]) => Promise<Map<string, WorkflowRecord>>,
  ): Promise<OutboxWritten> {
    if (changes.length === 0) return { events: 0, deliveries: [] };
    // raw SQL: this runs in every writing transaction, and compiling a builder query costs more than running it
    const rows = rowsOf<SubscriptionRow>(await writes.trx.raw(ENABLED_SUBSCRIPTIONS, [true]));
    const subscriptions = rows.map((s) => ({
      id: s.id,
      events: new Set(JSON.parse(s.events) as string[]),
      categories: s.categories === null ? null : new Set(JSON.parse(s.categories) as string[]),
    }));
    const matches: Array<{ change: RecordChange; subscriptionId: string }> = [];
    for (const change of changes) {
      for (const s of subscriptions) {
        if (s.events.has(change.type) && (s.categories === null || s.categories.has(change.category))) {
          matches.push({ change, subscriptionId: s.id });
        }
      }
    }
    const deliveries: DeliveryJob[] = [];
    const deliveryRows: Knex.Value[][] = [];
    if (matches.length > 0) {
      const records = await recordsOf([...new Set(matches.map((m) => m.change.recordId))]);
      const bodies = new Map<RecordChange, string>();
      for (const { change, subscriptionId } of matches) {
        let body = bodies.get(change);
        if (body === undefined) {
          const record = records.get(change.recordId);
          body = JSON.stringify({ type: change.type, timestamp: iso(at), data: { record } });
          bodies.set(change, body);
        }
        const id = uuidv7();
        deliveries.push({ deliveryId: id, seq: 1 });
        deliveryRows.push([id, subscriptionId, change.type, change.recordId, body, 'pending', 0, 1, at, at]);
      }
    }
    if (this.dialect === 'postgres') writes.raw('SELECT pg_advisory_xact_lock(?)', [EVENT_LOG_LOCK]);
    writes
      .insertRows(
        'record_events',
        EVENT_COLUMNS,
        changes.map((c) => [c.type, c.recordId, c.category, c.source, c.from, c.to, at, c.attempt, c.error]),
      )
      .insertRows('webhook_deliveries', DELIVERY_COLUMNS, deliveryRows);
    return { events: changes.length, deliveries };
  }

  /** After the commit of a transaction that wrote to the outbox. */
  committed(written: OutboxWritten): void {
    if (written.events === 0) return;
    for (const listener of this.listeners) listener(written);
  }

  /** Called after every commit that wrote events; returns the unsubscribe. */
  onCommit(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
