import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../shared/config.js';

describe('config', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig({});
    expect(config).to.include({
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: 'sqlite:./data/workflow.db',
      databasePoolMax: 10,
      redisUrl: 'redis://127.0.0.1:6379',
      logLevel: 'info',
      workerConcurrency: 16,
      maxAttempts: 5,
      bodyLimit: '1mb',
      reconcileIntervalMs: 10000,
      shutdownTimeoutMs: 30000,
      metricsPort: 9464,
      rateLimitPerMinute: null,
      queuePrefix: 'bull',
      adminWrite: false,
      migrateOnStart: true,
      environment: 'development',
      gitCommit: null,
    });
    expect(config.apiKeys).to.deep.equal([]);
    expect(Object.isFrozen(config)).to.equal(true);
  });

  it('reads and converts the variables', () => {
    const config = loadConfig({
      PORT: '8080',
      API_KEYS: 'k1, k2,,',
      DATABASE_URL: 'postgres://u@h/db',
      MIGRATE_ON_START: 'false',
      RATE_LIMIT_PER_MINUTE: '60',
      REDIS_URL: 'redis://r:6380',
      DATABASE_POOL_MAX: '25',
      ADMIN_WRITE: 'true',
      HOST: '::',
      QUEUE_PREFIX: '{workflow}',
    });
    expect(config).to.include({
      port: 8080,
      migrateOnStart: false,
      rateLimitPerMinute: 60,
      databasePoolMax: 25,
      adminWrite: true,
      host: '::',
      queuePrefix: '{workflow}',
    });
    expect(config.apiKeys).to.deep.equal(['k1', 'k2']);
  });

  for (const [variable, value] of [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['LOG_LEVEL', 'loud'],
    ['WORKER_CONCURRENCY', '0'],
    ['MAX_ATTEMPTS', '1.5'],
    ['BODY_LIMIT', 'big'],
    ['MIGRATE_ON_START', 'perhaps'],
    ['QUEUE_PREFIX', 'a:b'],
    ['DATABASE_POOL_MAX', '0'],
    ['ADMIN_WRITE', 'maybe'],
    ['HOST', 'not a host'],
    ['API_KEYS', 'good,bad key'],
    ['NODE_ENV', 'pro duction'],
    ['GIT_COMMIT', 'not a commit!'],
  ]) {
    it(`rejects ${variable}=${value} naming the variable`, () => {
      expect(() => loadConfig({ [variable]: value }))
        .to.throw(ConfigError)
        .with.property('variable', variable);
    });
  }
});
