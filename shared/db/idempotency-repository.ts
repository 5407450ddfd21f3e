import type { Knex } from 'knex';

/** How long a key is remembered; after that the same key is a new request. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/** A request made retry-safe: its client's scope, its key, and the hash of what it asked. */
export interface IdempotentRequest {
  /** the client's namespace for keys: its API key's fingerprint, or '' without keys */
  scope: string;
  key: string;
  requestHash: string;
}

export interface StoredResponse {
  /** null for a key stored before request bodies were compared: any request with it replays */
  requestHash: string | null;
  statusCode: number;
  body: unknown;
  location: string | null;
}

interface IdempotencyRow {
  request_hash: string | null;
  status_code: number;
  response: string;
  location: string | null;
}

const PRUNE_BATCH = 1000;

/** The first response to each (scope, Idempotency-Key), kept for 24 h. */
export class IdempotencyRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex = knex,
  ) {}

  /** The stored first response, while it is younger than the TTL. */
  async find(scope: string, key: string, db: Knex | Knex.Transaction = this.reader): Promise<StoredResponse | null> {
    const row = (await db('idempotency_responses')
      .select('request_hash', 'status_code', 'response', 'location')
      .where({ scope, key })
      .andWhere('created_at', '>', Date.now() - IDEMPOTENCY_TTL_MS)
      .first()) as IdempotencyRow | undefined;
    if (!row) return null;
    return {
      requestHash: row.request_hash,
      statusCode: Number(row.status_code),
      body: JSON.parse(row.response) as unknown,
      location: row.location,
    };
  }

  /**
   * Stores the first response inside the transaction that makes it true. An expired row
   * for the key is removed first, so a key reused after the TTL is a new request; a
   * live one makes the insert fail with a unique violation, which the caller answers
   * with a replay.
   */
  async store(
    trx: Knex.Transaction,
    request: IdempotentRequest,
    response: Omit<StoredResponse, 'requestHash'>,
    now: number,
  ): Promise<void> {
    await trx('idempotency_responses')
      .where({ scope: request.scope, key: request.key })
      .andWhere('created_at', '<=', now - IDEMPOTENCY_TTL_MS)
      .delete();
    await trx('idempotency_responses').insert({
      scope: request.scope,
      key: request.key,
      request_hash: request.requestHash,
      status_code: response.statusCode,
      response: JSON.stringify(response.body),
      location: response.location,
      created_at: now,
    });
  }

  /** Deletes expired keys, a bounded batch at a time; returns how many. */
  async prune(maxRows = 10 * PRUNE_BATCH): Promise<number> {
    const cutoff = Date.now() - IDEMPOTENCY_TTL_MS;
    let pruned = 0;
    while (pruned < maxRows) {
      const expired = this.knex('idempotency_responses')
        .select('scope', 'key')
        .where('created_at', '<=', cutoff)
        .orderBy('created_at')
        .limit(PRUNE_BATCH);
      const n = await this.knex('idempotency_responses')
        .whereIn(['scope', 'key'], expired)
        .andWhere('created_at', '<=', cutoff)
        .delete();
      pruned += n;
      if (n < PRUNE_BATCH) break;
    }
    return pruned;
  }
}
