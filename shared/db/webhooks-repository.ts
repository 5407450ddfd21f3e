import type { Knex } from 'knex';
import { v4 as uuidv4 } from 'uuid';
import type { EventType } from '../events.js';
import type { DeliveryJob } from './outbox.js';
import { iso, isoOrNull, retryWhileBusy } from './sql.js';

export interface Subscription {
  id: string;
  url: string;
  events: EventType[];
  categories: string[] | null;
  description: string | null;
  enabled: boolean;
  created_at: string;
}

export interface SubscriptionInput {
  url: string;
  events: EventType[];
  categories?: string[] | null;
  description?: string | null;
  enabled?: boolean;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  event: EventType;
  record_id: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  next_attempt_at: string | null;
}

/** What a delivery job needs to send: the delivery and its subscription. */
export interface DeliveryToSend {
  id: string;
  seq: number;
  status: DeliveryStatus;
  attempts: number;
  body: string;
  subscriptionId: string;
  url: string;
  /** the secrets that sign, as stored: the current one, and the previous one while its grace lasts */
  secrets: string[];
  enabled: boolean;
}

/** The outcome of one attempt that got no 2xx. */
export interface FailedAttempt {
  statusCode: number | null;
  error: string;
  /** no further attempt: the delivery is failed */
  final: boolean;
  /** when the next attempt is due (ignored when final) */
  nextAttemptAt: number;
}

interface SubscriptionRow {
  id: string;
  url: string;
  events: string;
  categories: string | null;
  description: string | null;
  enabled: boolean | number;
  secret: string;
  created_at: number | string;
}

interface DeliveryRow {
  id: string;
  event: EventType;
  record_id: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number | string;
  delivered_at: number | string | null;
  next_attempt_at: number | string | null;
}

const DELIVERY_FIELDS = [
  'id',
  'event',
  'record_id',
  'status',
  'attempts',
  'last_status_code',
  'last_error',
  'created_at',
  'delivered_at',
  'next_attempt_at',
];
const PRUNE_BATCH = 1000;
const MAX_ERROR = 2000;

const toSubscription = (row: SubscriptionRow): Subscription => ({
  id: row.id,
  url: row.url,
  events: JSON.parse(row.events) as EventType[],
  categories: row.categories === null ? null : (JSON.parse(row.categories) as string[]),
  description: row.description,
  enabled: Boolean(row.enabled),
  created_at: iso(row.created_at),
});

const toDelivery = (row: DeliveryRow): Delivery => ({
  id: row.id,
  event: row.event,
  record_id: row.record_id,
  status: row.status,
  attempts: Number(row.attempts),
  last_status_code: row.last_status_code === null ? null : Number(row.last_status_code),
  last_error: row.last_error,
  created_at: iso(row.created_at),
  delivered_at: isoOrNull(row.delivered_at),
  next_attempt_at: row.status === 'pending' ? isoOrNull(row.next_attempt_at) : null,
});

/** Webhook subscriptions and their deliveries (the outbox rows themselves are written by Outbox). */
export class WebhooksRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex,
  ) {}

  /** `secret` as it is to be stored (sealed by the caller). */
  async createSubscription(input: SubscriptionInput, secret: string): Promise<Subscription> {
    const now = Date.now();
    const row: SubscriptionRow = {
      id: uuidv4(),
      url: input.url,
      events: JSON.stringify(input.events),
      categories: input.categories ? JSON.stringify(input.categories) : null,
      description: input.description ?? null,
      enabled: input.enabled ?? true,
      secret,
      created_at: now,
    };
    await retryWhileBusy(() => this.knex('webhook_subscriptions').insert({ ...row, updated_at: now }));
    return toSubscription(row);
  }

  async listSubscriptions(): Promise<Subscription[]> {
    const rows = (await this.reader('webhook_subscriptions').orderBy('created_at').orderBy('id')) as SubscriptionRow[];
    return rows.map(toSubscription);
  }

  async findSubscription(id: string): Promise<Subscription | null> {
    const row = (await this.knex('webhook_subscriptions').where({ id }).first()) as SubscriptionRow | undefined;
    return row ? toSubscription(row) : null;
  }

  async updateSubscription(id: string, patch: Partial<SubscriptionInput>): Promise<Subscription | null> {
    const changes: Record<string, unknown> = { updated_at: Date.now() };
    if (patch.url !== undefined) changes.url = patch.url;
    if (patch.events !== undefined) changes.events = JSON.stringify(patch.events);
    if (patch.categories !== undefined) changes.categories = patch.categories ? JSON.stringify(patch.categories) : null;
    if (patch.description !== undefined) changes.description = patch.description;
    if (patch.enabled !== undefined) {
      changes.enabled = patch.enabled;
      if (patch.enabled) changes.disabled_reason = null;
    }
    const updated = await retryWhileBusy(() => this.knex('webhook_subscriptions').where({ id }).update(changes));
    return updated === 0 ? null : this.findSubscription(id);
  }

  /** Deletes a subscription with its deliveries (the pending ones are never sent). */
  async deleteSubscription(id: string): Promise<boolean> {
    return retryWhileBusy(() =>
      this.knex.transaction(async (trx) => {
        await trx('webhook_deliveries').where({ subscription_id: id }).delete();
        return (await trx('webhook_subscriptions').where({ id }).delete()) > 0;
      }),
    );
  }

  /**
   * Replaces the signing secret (`secret` as it is to be stored); the one it replaces goes on
   * signing beside it until `previousUntil`. False for an unknown subscription.
   */
  async rotateSecret(id: string, secret: string, previousUntil: number): Promise<boolean> {
    return retryWhileBusy(() =>
      this.knex.transaction(async (trx) => {
        const current = (await trx('webhook_subscriptions').select('secret').where({ id }).first()) as
          { secret: string } | undefined;
        if (!current) return false;
        await trx('webhook_subscriptions').where({ id }).update({
          secret,
          previous_secret: current.secret,
          previous_secret_expires_at: previousUntil,
          updated_at: Date.now(),
        });
        return true;
      }),
    );
  }

  /**
   * Deletes a delivery whose subscription is gone: on PostgreSQL a writer that read the
   * subscriptions just before a DELETE committed can still add one for it.
   */
  async dropOrphan(deliveryId: string): Promise<boolean> {
    const n = await retryWhileBusy(() =>
      this.knex('webhook_deliveries')
        .where({ id: deliveryId })
        .whereNotExists(
          this.knex('webhook_subscriptions')
            .select('id')
            .whereRaw('webhook_subscriptions.id = webhook_deliveries.subscription_id'),
        )
        .delete(),
    );
    return n > 0;
  }

  /** A 410 from the receiver: no more deliveries are made for this subscription. */
  async disableSubscription(id: string, reason: string): Promise<void> {
    await retryWhileBusy(() =>
      this.knex('webhook_subscriptions')
        .where({ id })
        .update({ enabled: false, disabled_reason: reason, updated_at: Date.now() }),
    );
  }

  /** Newest first, after the delivery id `before` (a cursor); one more than `limit` tells whether a page follows. */
  async listDeliveries(
    subscriptionId: string,
    { status, before, limit }: { status?: DeliveryStatus; before?: string; limit: number },
  ): Promise<{ items: Delivery[]; next: string | null }> {
    const query = this.reader('webhook_deliveries')
      .select(DELIVERY_FIELDS)
      .where({ subscription_id: subscriptionId })
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (status) query.andWhere({ status });
    if (before) query.andWhere('id', '<', before);
    const rows = (await query) as DeliveryRow[];
    const items = rows.slice(0, limit).map(toDelivery);
    return { items, next: rows.length > limit ? items[items.length - 1]!.id : null };
  }

  /** Sends a delivery again under the same id: pending, a fresh round of attempts, its next job. */
  async redeliver(
    subscriptionId: string,
    deliveryId: string,
  ): Promise<{ job: DeliveryJob; delivery: Delivery } | null> {
    const now = Date.now();
    const rows = (await retryWhileBusy(() =>
      this.knex('webhook_deliveries')
        .where({ id: deliveryId, subscription_id: subscriptionId })
        .update({
          status: 'pending',
          attempts: 0,
          job_seq: this.knex.raw('job_seq + 1'),
          next_attempt_at: now,
          finished_at: null,
        })
        .returning([...DELIVERY_FIELDS, 'job_seq']),
    )) as Array<DeliveryRow & { job_seq: number }>;
    const row = rows[0];
    return row ? { job: { deliveryId, seq: Number(row.job_seq) }, delivery: toDelivery(row) } : null;
  }

  /** Deliveries with their subscriptions, one per id in order (null where unknown): one query for many jobs. */
  async loadForSend(deliveryIds: readonly string[]): Promise<Array<DeliveryToSend | null>> {
    const rows = (await this.knex('webhook_deliveries as d')
      .join('webhook_subscriptions as s', 's.id', 'd.subscription_id')
      .select(
        'd.id',
        'd.job_seq',
        'd.status',
        'd.attempts',
        'd.body',
        'd.subscription_id',
        's.url',
        's.secret',
        's.previous_secret',
        's.previous_secret_expires_at',
        's.enabled',
      )
      .whereIn('d.id', [...new Set(deliveryIds)])) as Array<{
      id: string;
      job_seq: number;
      status: DeliveryStatus;
      attempts: number;
      body: string;
      subscription_id: string;
      url: string;
      secret: string;
      previous_secret: string | null;
      previous_secret_expires_at: number | string | null;
      enabled: boolean | number;
    }>;
    const now = Date.now();
    const byId = new Map(
      rows.map((row) => [
        row.id,
        {
          id: row.id,
          seq: Number(row.job_seq),
          status: row.status,
          attempts: Number(row.attempts),
          body: row.body,
          subscriptionId: row.subscription_id,
          url: row.url,
          secrets:
            row.previous_secret !== null && Number(row.previous_secret_expires_at) > now
              ? [row.secret, row.previous_secret]
              : [row.secret],
          enabled: Boolean(row.enabled),
        },
      ]),
    );
    return deliveryIds.map((id) => byId.get(id) ?? null);
  }

  /**
   * Marks deliveries delivered, each guarded on its job's number, in one transaction (a
   * worker commits the deliveries that finish together as one group). For each: false when
   * another job of that delivery already settled it.
   */
  async markDelivered(items: ReadonlyArray<{ id: string; seq: number; attempts: number; statusCode: number }>) {
    const now = Date.now();
    return retryWhileBusy(() =>
      this.knex.transaction(async (trx) => {
        const out: boolean[] = [];
        for (const { id, seq, attempts, statusCode } of items) {
          const n = await trx('webhook_deliveries').where({ id, job_seq: seq, status: 'pending' }).update({
            status: 'delivered',
            attempts,
            last_status_code: statusCode,
            last_error: null,
            delivered_at: now,
            finished_at: now,
            next_attempt_at: null,
          });
          out.push(n === 1);
        }
        return out;
      }),
    );
  }

  /** Records a failed attempt: failed when final, else scheduled under the next job number (returned). */
  async markAttemptFailed(id: string, seq: number, attempts: number, f: FailedAttempt): Promise<number | null> {
    const error = f.error.replace(/\0/g, '').slice(0, MAX_ERROR);
    const common = { attempts, last_status_code: f.statusCode, last_error: error };
    const changes = f.final
      ? { ...common, status: 'failed', finished_at: Date.now(), next_attempt_at: null }
      : { ...common, job_seq: seq + 1, next_attempt_at: f.nextAttemptAt };
    const n = await retryWhileBusy(() =>
      this.knex('webhook_deliveries').where({ id, job_seq: seq, status: 'pending' }).update(changes),
    );
    if (n !== 1) return null;
    return f.final ? seq : seq + 1;
  }

  /** Pending deliveries due before `dueBefore`, in due order after a position: what the reconciler checks. */
  async findOverdue(
    dueBefore: number,
    after: [number, string] | null,
    limit: number,
  ): Promise<Array<DeliveryJob & { dueAt: number }>> {
    const query = this.knex('webhook_deliveries')
      .select('id', 'job_seq', 'next_attempt_at')
      .where('status', 'pending')
      .andWhere('next_attempt_at', '<', dueBefore)
      .orderBy([{ column: 'next_attempt_at' }, { column: 'id' }])
      .limit(limit);
    if (after) query.andWhereRaw('(next_attempt_at, id) > (?, ?)', after);
    const rows = (await query) as Array<{ id: string; job_seq: number; next_attempt_at: number | string }>;
    return rows.map((r) => ({ deliveryId: r.id, seq: Number(r.job_seq), dueAt: Number(r.next_attempt_at) }));
  }

  /** Of these jobs, those still pending under that job number. */
  async stillPending(jobs: readonly DeliveryJob[]): Promise<DeliveryJob[]> {
    if (jobs.length === 0) return [];
    const rows = (await this.knex('webhook_deliveries')
      .select('id', 'job_seq')
      .where('status', 'pending')
      .whereIn(
        'id',
        jobs.map((j) => j.deliveryId),
      )) as Array<{ id: string; job_seq: number }>;
    const current = new Map(rows.map((r) => [r.id, Number(r.job_seq)]));
    return jobs.filter((j) => current.get(j.deliveryId) === j.seq);
  }

  /** When the oldest pending delivery was made, or null when none is pending. */
  async oldestPendingCreatedAt(): Promise<number | null> {
    const row = (await this.reader('webhook_deliveries')
      .where('status', 'pending')
      .min({ at: 'created_at' })
      .first()) as { at: number | string | null } | undefined;
    return row?.at == null ? null : Number(row.at);
  }

  /** Deletes deliveries that ended before `before`; returns how many. */
  async prune(before: number): Promise<number> {
    let total = 0;
    for (;;) {
      const ids = this.knex('webhook_deliveries').select('id').where('finished_at', '<', before).limit(PRUNE_BATCH);
      const n = await retryWhileBusy(() => this.knex('webhook_deliveries').whereIn('id', ids).delete());
      total += n;
      if (n < PRUNE_BATCH) return total;
    }
  }
}
