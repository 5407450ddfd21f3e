import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  createEnqueuer,
  jobIdFor,
  type Database,
  type IntentPosition,
  type Logger,
  type OutstandingIntent,
  type ProcessJobData,
  type Queueing,
} from '../shared/index.js';
import type { DeliveryRepair } from './delivery-reconciler.js';

export interface ReconcileLimits {
  /** intents read per query */
  pageSize: number;
  /** most intents one pass examines, all checks together; the rest waits for the next pass */
  maxIntentsPerPass: number;
  /** outstanding queueings the background walk reads per pass (within maxIntentsPerPass) */
  walkPerPass: number;
  /** how long a turn lasts unless renewed; renewed every third of it while a pass runs */
  lockTtlMs: number;
}

export const DEFAULT_RECONCILE_LIMITS: ReconcileLimits = {
  pageSize: 500,
  maxIntentsPerPass: 10_000,
  walkPerPass: 1_000,
  lockTtlMs: 30_000,
};

export interface ReconcilerDeps {
  db: Pick<Database, 'reconciliation' | 'idempotency'>;
  queue: Queue<ProcessJobData>;
  connection: Redis;
  logger: Logger;
  intervalMs: number;
  limits?: Partial<ReconcileLimits>;
  /** webhook deliveries repaired in the same turn (worker/delivery-reconciler.ts) */
  deliveries?: DeliveryRepair;
}

export interface Reconciler {
  /** One pass; returns how many jobs it added again (0 when another process holds the turn). */
  reconcileLostJobs(): Promise<number>;
  stop(): Promise<void>;
}

// only the holder of the turn extends or ends it
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;
// the progress of a pass is kept only if the pass still held its turn
const FINISH = `if redis.call('get', KEYS[1]) == ARGV[1] then
  if #ARGV > 1 then redis.call('hset', KEYS[2], unpack(ARGV, 2)) end
  redis.call('del', KEYS[1])
  return 1
end
return 0`;

/** What the passes share, kept in Redis beside the queue so that whichever worker takes the turn continues it. */
interface PassState {
  /** the Redis server the state was written on (INFO server's run_id; '' where INFO is not allowed) */
  runId: string;
  /** an audit is under way over the queueings stored up to this time */
  auditUntil: number | null;
  auditAfter: IntentPosition | null;
  walkAfter: IntentPosition | null;
  scanAfter: IntentPosition | null;
  /** finishedOn of the last failed job looked at */
  failedAfter: number;
}

interface Repairs {
  unconfirmed: number;
  failed: number;
  audit: number;
  walk: number;
}

const position = (text: string | undefined): IntentPosition | null =>
  text ? (JSON.parse(text) as IntentPosition) : null;

/**
 * Repairs enqueues that never reached Redis and jobs Redis lost, at a cost that follows
 * what went wrong rather than how many records wait. One worker at a time takes the turn
 * (a Redis lock with a token, renewed while the pass runs and released at its end); were
 * two to run anyway, the job id makes a second add a no-op and the status guard makes any
 * redelivery harmless. Each pass, within `maxIntentsPerPass` intents examined:
 *
 * - **Unconfirmed intents** (records_unconfirmed_idx): an intent whose job was never
 *   confirmed added, older than one interval. Catches an enqueue that failed or timed out
 *   after commit, and an API that died between commit and add. Costs one query per page
 *   of such intents, normally one query that finds nothing. A job found alive is
 *   confirmed, so it is not looked at again.
 * - **Jobs that failed without a transition**: BullMQ keeps a job whose last attempt threw
 *   (the database was away when its outcome was written, or it stalled too often) in its
 *   failed set; each pass reads the ones that failed since the last (one ZRANGEBYSCORE).
 * - **An audit after a likely loss**: a confirmed job can still vanish with Redis's data.
 *   When the server's run_id (INFO server) differs from the one this state was written
 *   on (a restart, a failover to a replica) or the state itself is gone (restarted empty,
 *   keys flushed or evicted), every queueing stored until then is checked, keyset-paged
 *   through records_queued_idx, as far as the pass's budget allows and continued by the
 *   next passes. It costs one query and one pipelined HMGET per page of 500 while it runs
 *   (about 5 ms a page, on SQLite and PostgreSQL alike, with 1M records queued:
 *   `npx tsx bench/reconciler.ts`), so 1M queued records take 100 passes; nothing otherwise.
 * - **A background walk** over the same index, `walkPerPass` queueings per pass, its
 *   cursor kept between passes: it repairs, eventually, a loss no signal revealed (a key
 *   deleted by hand, a failover that kept the state but lost later writes). It reaches
 *   every queueing in (outstanding queueings / walkPerPass) passes, at a constant cost
 *   per pass (two pages by default). Every worker runs a pass per interval, so N workers
 *   walk N times as fast.
 *
 * A job found missing, or finished while its record is still pending in that queueing
 * (read again after Redis, so a job that just finished is not taken for lost), is added
 * again under the same job id; a finished job is removed first, and left for a later
 * pass when it cannot be removed, since an add beside it would do nothing.
 */
export function startReconciler({
  db,
  queue,
  connection,
  logger,
  intervalMs,
  limits: overrides,
  deliveries,
}: ReconcilerDeps): Reconciler {
  const limits = { ...DEFAULT_RECONCILE_LIMITS, ...overrides };
  const lockKey = `${queue.qualifiedName}:reconcile-lock`;
  const stateKey = `${queue.qualifiedName}:reconcile-state`;
  const failedKey = queue.toKey('failed');
  const enqueuer = createEnqueuer({ queue, confirmations: db.reconciliation, logger });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  /** The state of the passes, or a fresh one (with an audit) when Redis may have lost data. */
  async function readState(now: number): Promise<PassState> {
    const replies = (await connection.pipeline().info('server').hgetall(stateKey).exec()) ?? [];
    const [[infoErr, info] = [], [stateErr, stored] = []] = replies;
    if (stateErr) throw stateErr;
    // managed Redis may refuse INFO: then only a vanished state reveals a loss
    const runId = infoErr ? '' : (/^run_id:(\w+)/m.exec(info as string)?.[1] ?? '');
    const fields = stored as Record<string, string>;
    const missing = fields.run_id === undefined;
    if (missing || (runId !== '' && fields.run_id !== runId)) {
      logger.warn(
        { reason: missing ? 'state_missing' : 'server_changed' },
        'Redis may have lost jobs: auditing every queued record',
      );
      return { runId, auditUntil: now, auditAfter: null, walkAfter: null, scanAfter: null, failedAfter: 0 };
    }
    return {
      runId,
      auditUntil: fields.audit_until ? Number(fields.audit_until) : null,
      auditAfter: position(fields.audit_after),
      walkAfter: position(fields.walk_after),
      scanAfter: position(fields.scan_after),
      failedAfter: Number(fields.failed_after ?? 0),
    };
  }

  const stateFields = (s: PassState): string[] => [
    'run_id',
    s.runId,
    'audit_until',
    s.auditUntil === null ? '' : String(s.auditUntil),
    'audit_after',
    s.auditAfter ? JSON.stringify(s.auditAfter) : '',
    'walk_after',
    s.walkAfter ? JSON.stringify(s.walkAfter) : '',
    'scan_after',
    s.scanAfter ? JSON.stringify(s.scanAfter) : '',
    'failed_after',
    String(s.failedAfter),
  ];

  /**
   * Looks up each intent's job; confirms the live ones not yet confirmed and adds again
   * the lost ones. Returns how many it added.
   */
  async function examine(intents: readonly OutstandingIntent[]): Promise<number> {
    if (intents.length === 0) return 0;
    const pipeline = connection.pipeline();
    for (const i of intents) pipeline.hmget(queue.toKey(jobIdFor(i.recordId, i.seq)), 'timestamp', 'finishedOn');
    const replies = (await pipeline.exec()) ?? [];
    const alive: OutstandingIntent[] = [];
    const suspects: OutstandingIntent[] = [];
    const finished = new Set<string>();
    for (const [index, intent] of intents.entries()) {
      const [err, fields] = replies[index] ?? [];
      if (err) throw err;
      const [createdAt, finishedOn] = fields as [string | null, string | null];
      if (createdAt !== null && finishedOn === null) {
        alive.push(intent); // waiting, active or delayed
        continue;
      }
      if (finishedOn !== null) finished.add(intent.recordId);
      suspects.push(intent);
    }
    const unconfirmed = alive.filter((i) => !i.confirmed);
    if (unconfirmed.length > 0) await db.reconciliation.confirmEnqueued(unconfirmed);
    if (suspects.length === 0) return 0;

    // read after Redis: a job that finished meanwhile committed its transition before it finished
    const outstanding = new Set((await db.reconciliation.findIntents(suspects)).map((i) => i.recordId));
    const lost: ProcessJobData[] = [];
    for (const intent of suspects) {
      if (!outstanding.has(intent.recordId)) continue;
      const jobId = jobIdFor(intent.recordId, intent.seq);
      if (finished.has(intent.recordId)) {
        // finished with the record still pending: its transition never committed
        const removed = await queue.remove(jobId).catch(() => 0);
        if (removed !== 1) {
          logger.warn({ job_id: jobId }, 'finished job could not be removed; a later pass queues its record again');
          continue;
        }
      }
      lost.push({ recordId: intent.recordId, seq: intent.seq, requestId: intent.requestId });
    }
    if (lost.length === 0) return 0;
    if (!(await enqueuer.enqueue(lost))) throw new Error('enqueue failed');
    await enqueuer.flush(); // confirmed within this turn, so the next pass does not look at them again
    return lost.length;
  }

  /** Jobs failed since the last pass whose record is still pending in their queueing, and where to read on. */
  async function failedWithoutTransition(
    state: PassState,
    limit: number,
  ): Promise<{ intents: OutstandingIntent[]; read: number; next: number }> {
    // scores are finishedOn, by the failing worker's clock: a worker whose clock lags may
    // file one behind this cursor, and then only the walk finds it
    const page = await connection.zrangebyscore(
      failedKey,
      `(${state.failedAfter}`,
      '+inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    if (page.length === 0) return { intents: [], read: 0, next: state.failedAfter };
    const queueings: Queueing[] = [];
    for (let i = 0; i < page.length; i += 2) {
      const jobId = page[i]!;
      const dash = jobId.lastIndexOf('-');
      if (dash > 0) queueings.push({ recordId: jobId.slice(0, dash), seq: Number(jobId.slice(dash + 1)) });
    }
    const next = Number(page[page.length - 1]);
    return { intents: await db.reconciliation.findIntents(queueings), read: page.length / 2, next };
  }

  async function pass(state: PassState, held: () => boolean, now: number): Promise<Repairs> {
    const repairs: Repairs = { unconfirmed: 0, failed: 0, audit: 0, walk: 0 };
    let budget = limits.maxIntentsPerPass;

    const failed = await failedWithoutTransition(state, Math.min(limits.pageSize, budget));
    budget -= failed.read;
    repairs.failed = await examine(failed.intents);
    state.failedAfter = failed.next;

    while (budget > 0 && held()) {
      const limit = Math.min(limits.pageSize, budget);
      const page = await db.reconciliation.findUnconfirmedIntents(now - intervalMs, state.scanAfter, limit);
      budget -= page.length;
      repairs.unconfirmed += await examine(page);
      const last = page[page.length - 1];
      state.scanAfter = page.length < limit || !last ? null : [last.queuedAt, last.recordId];
      if (state.scanAfter === null) break;
    }

    // the audit and the walk check confirmed jobs (unconfirmed ones are the scan's); each
    // page is counted and its position kept as soon as it is done. True once at the end
    const walk = async (kind: 'audit' | 'walk', until: number, allowance: number): Promise<boolean> => {
      const cursor = kind === 'audit' ? 'auditAfter' : 'walkAfter';
      while (allowance > 0 && held()) {
        const limit = Math.min(limits.pageSize, allowance);
        const page = await db.reconciliation.findOutstandingIntents(until, state[cursor], limit);
        allowance -= page.length;
        budget -= page.length;
        repairs[kind] += await examine(page.filter((i) => i.confirmed));
        const last = page[page.length - 1];
        state[cursor] = page.length < limit || !last ? null : [last.queuedAt, last.recordId];
        if (state[cursor] === null) return true;
      }
      return false;
    };
    if (state.auditUntil === null) {
      await walk('walk', now - intervalMs, Math.min(limits.walkPerPass, budget));
    } else if (await walk('audit', state.auditUntil, budget)) {
      state.auditUntil = null;
      logger.info('audit of queued records finished');
    }
    return repairs;
  }

  async function reconcileLostJobs(): Promise<number> {
    const token = randomUUID();
    const turn = await connection.set(lockKey, token, 'PX', limits.lockTtlMs, 'NX');
    if (turn !== 'OK') return 0;
    let held = true;
    const renewal = setInterval(() => {
      connection.eval(RENEW, 1, lockKey, token, limits.lockTtlMs).then(
        (renewed) => {
          if (renewed === 1 || !held) return;
          held = false;
          logger.warn('reconciler lost its turn mid-pass; stopping the pass');
        },
        () => undefined, // Redis away: the next renewal tries again
      );
    }, limits.lockTtlMs / 3);
    const now = Date.now();
    let state: PassState | undefined;
    let repairs: Repairs;
    let deliveriesRequeued = 0;
    try {
      state = await readState(now);
      repairs = await pass(state, () => held, now);
      if (deliveries && held) deliveriesRequeued = await deliveries.repairLostDeliveries();
    } finally {
      clearInterval(renewal);
      // keeps what the pass got through, even when it failed midway; a lock left behind expires
      await connection
        .eval(FINISH, 2, lockKey, stateKey, token, ...(state ? stateFields(state) : []))
        .catch((err: Error) => logger.warn({ err: { message: err.message } }, 'reconciler turn not released'));
    }
    const requeued = repairs.unconfirmed + repairs.failed + repairs.audit + repairs.walk;
    if (requeued > 0) logger.warn({ requeued, ...repairs }, 'reconciler queued lost jobs again');
    const pruned = await db.idempotency.prune();
    if (pruned > 0) logger.info({ pruned }, 'expired idempotency keys pruned');
    await deliveries?.prune();
    return requeued + deliveriesRequeued;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = reconcileLostJobs()
        .catch((err: Error) =>
          logger.warn({ err: { message: err.message } }, 'reconcile pass failed; next interval retries'),
        )
        .finally(schedule);
    }, intervalMs);
  };
  schedule();

  return {
    reconcileLostJobs,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
