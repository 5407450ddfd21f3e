import type Router from '@koa/router';
import { connectedServer, queueCounts, withTimeout } from '../../shared/index.js';
import type { AppDeps } from '../deps.js';

const CHECK_TIMEOUT_MS = 1000;

export function registerHealthRoutes(router: Router, { db, queue, redis, version, config }: AppDeps): void {
  router.get('/health/live', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/health', async (ctx) => {
    const [database, counts, workers] = await Promise.allSettled([
      withTimeout(db.records.ping(), CHECK_TIMEOUT_MS, 'timeout'),
      queueCounts(queue, CHECK_TIMEOUT_MS),
      // the workers' connections as Redis lists them (CLIENT LIST); informative, so never a failed check
      withTimeout(queue.getWorkersCount(), CHECK_TIMEOUT_MS, 'timeout'),
    ]);
    const databaseOk = database.status === 'fulfilled';
    const queueOk = counts.status === 'fulfilled';
    ctx.status = databaseOk && queueOk ? 200 : 503;
    ctx.body = {
      service: 'ok',
      version: version.version,
      database: { status: databaseOk ? 'ok' : 'error' },
      queue: queueOk
        ? {
            status: 'ok',
            waiting: counts.value.waiting,
            active: counts.value.active,
            failed: counts.value.failed,
            ...(workers.status === 'fulfilled' ? { workers: workers.value } : {}),
          }
        : { status: 'error' },
      // which server this process's connection uses now: after a failover, the promoted replica
      redis: {
        mode: config.redis.mode,
        ...(config.redis.mode === 'sentinel' ? { master_name: config.redis.name } : {}),
        primary: connectedServer(redis),
      },
    };
  });

  router.get('/version', (ctx) => {
    ctx.body = { version: version.version, commit: version.commit, environment: config.environment };
  });
}
