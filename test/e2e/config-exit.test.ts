import { expect } from 'chai';
import { CONFIG_VARIABLES } from '../../shared/index.js';
import { startProcess } from '../helpers/processes.js';

/** One value per variable that the configuration must refuse. */
const BAD_VALUES: Record<string, string> = {
  PORT: '70000',
  HOST: 'not a host',
  DATABASE_URL: 'mysql://db/x',
  DATABASE_POOL_MAX: '0',
  REDIS_URL: 'http://127.0.0.1:6379',
  LOG_LEVEL: 'loud',
  API_KEYS: 'good-key,bad key',
  WORKER_CONCURRENCY: '0',
  MAX_ATTEMPTS: 'five',
  RETRY_BACKOFF_MS: '-1',
  BODY_LIMIT: 'big',
  RECONCILE_INTERVAL_MS: '10',
  SHUTDOWN_TIMEOUT_MS: 'soon',
  JOB_LOCK_MS: '10',
  STALLED_INTERVAL_MS: '10',
  METRICS_PORT: '-1',
  RATE_LIMIT_PER_MINUTE: '0',
  AUTH_FAILURES_PER_MINUTE: '-1',
  TRUST_PROXY: 'everyone',
  QUEUE_PREFIX: 'a:b',
  ADMIN_WRITE: 'maybe',
  MIGRATE_ON_START: 'perhaps',
  NODE_ENV: 'pro duction',
  GIT_COMMIT: 'not a commit!',
  CATEGORIES_FILE: '/nonexistent/categories.yaml',
  WEBHOOK_TIMEOUT_MS: '10',
  WEBHOOK_BACKOFF_MS: '-5',
  WEBHOOK_MAX_ATTEMPTS: '0',
  WEBHOOK_ALLOW_PRIVATE_URLS: 'sometimes',
  WEBHOOK_CONCURRENCY: '0',
  WEBHOOK_SECRET_KEY: 'too-short',
  EVENT_RETENTION_HOURS: 'forever',
  EVENTS_MAX_STREAMS: '0',
};

/** The built entry points, started as `npm run api|worker` would, with one bad variable each. */
describe('e2e: a bad configuration value stops the process, naming the variable', function () {
  this.timeout(120_000);

  it('has a bad value for every variable the configuration reads', () => {
    expect(Object.keys(BAD_VALUES).sort()).to.deep.equal([...CONFIG_VARIABLES].sort());
  });

  for (const kind of ['api', 'worker'] as const) {
    it(`${kind}: exits non-zero with the variable's name on stderr, for each variable`, async () => {
      const failures: string[] = [];
      const entries = Object.entries(BAD_VALUES);
      // a few at a time: each is a Node process loading the whole entry point
      for (let i = 0; i < entries.length; i += 4) {
        await Promise.all(
          entries.slice(i, i + 4).map(async ([variable, value]) => {
            const child = startProcess(kind, { [variable]: value });
            const code = await Promise.race([
              child.closed,
              new Promise<'running'>((r) => setTimeout(() => r('running'), 15_000)),
            ]);
            if (code === 'running') await child.stop('SIGKILL');
            const stderr = child.stderr();
            if (code === 0 || code === 'running' || !stderr.includes(variable)) {
              failures.push(
                `${variable}=${value}: exit ${String(code)}, stderr ${JSON.stringify(stderr.slice(0, 200))}`,
              );
            }
          }),
        );
      }
      expect(failures).to.deep.equal([]);
    });
  }
});
