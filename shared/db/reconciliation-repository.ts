import type { Knex } from 'knex';
import { PROCESSABLE_STATUS } from '../state-machine.js';

export interface OutstandingIntent {
  recordId: string;
  seq: number;
  requestId: string | null;
}

/** What the reconciler reads to find enqueues that never reached Redis. */
export class ReconciliationRepository {
  constructor(private readonly reader: Knex) {}

  /**
   * Pending records whose intent to process is older than `queuedBefore`: the
   * candidates for a lost enqueue. Keyset-paged on id.
   */
  async findOutstandingIntents(
    queuedBefore: number,
    afterId: string | null,
    limit: number,
  ): Promise<OutstandingIntent[]> {
    const q = this.reader('records')
      .select('id', 'queue_seq', 'queued_request_id')
      .where('status', PROCESSABLE_STATUS)
      .whereNotNull('queued_at')
      .andWhere('queued_at', '<', queuedBefore)
      .orderBy('id')
      .limit(limit);
    if (afterId) q.andWhere('id', '>', afterId);
    const rows = (await q) as Array<{ id: string; queue_seq: number; queued_request_id: string | null }>;
    return rows.map((r) => ({ recordId: r.id, seq: Number(r.queue_seq), requestId: r.queued_request_id }));
  }
}
