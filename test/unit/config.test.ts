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
      authFailuresPerMinute: 20,
      trustProxy: null,
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

  it('reads REDIS_URL as one server or as sentinels and a master name', () => {
    expect(loadConfig({ REDIS_URL: 'rediss://:secret@r.example:6380/2' }).redis).to.deep.equal({
      mode: 'standalone',
      url: 'rediss://:secret@r.example:6380/2',
    });
    const sentinel = loadConfig({
      REDIS_URL:
        'redis+sentinel://app:p%40ss@s1.example:26379,10.0.0.2,[::1]:26380/my%20primary?db=3&sentinel_password=sp',
    });
    expect(sentinel.redisUrl).to.match(/^redis\+sentinel:/);
    expect(sentinel.redis).to.deep.equal({
      mode: 'sentinel',
      sentinels: [
        { host: 's1.example', port: 26379 },
        { host: '10.0.0.2', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'my primary',
      db: 3,
      username: 'app',
      password: 'p@ss',
      sentinelPassword: 'sp',
    });
    expect(loadConfig({ REDIS_URL: 'REDIS+SENTINEL://:pw@h:1/m' }).redis).to.deep.include({ password: 'pw', db: 0 });
  });

  it('names what is wrong with a sentinel REDIS_URL', () => {
    expect(() => loadConfig({ REDIS_URL: 'redis+sentinel://h:26379' })).to.throw(/REDIS_URL.*master name/);
    expect(() => loadConfig({ REDIS_URL: 'redis+sentinel://h/m?tls=1' })).to.throw(/unknown parameter "tls"/);
  });

  it('reads TRUST_PROXY as a hop count or as addresses and subnets', () => {
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).to.deep.equal({ hops: 2 });
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,fd00::/8' }).trustProxy).to.deep.equal({
      addresses: ['10.0.0.0/8', '192.168.1.7', 'fd00::/8'],
    });
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).to.equal(null);
    expect(loadConfig({ TRUST_PROXY: '0' }).trustProxy).to.equal(null);
    expect(loadConfig({ AUTH_FAILURES_PER_MINUTE: '0' }).authFailuresPerMinute).to.equal(0);
  });

  for (const [variable, value] of [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['REDIS_URL', 'redis+sentinel://127.0.0.1:26379'],
    ['REDIS_URL', 'redis+sentinel://127.0.0.1:26379,/mymaster'],
    ['REDIS_URL', 'redis+sentinel://127.0.0.1:0/mymaster'],
    ['REDIS_URL', 'redis+sentinel://127.0.0.1/mymaster?db=one'],
    ['REDIS_URL', 'redis+sentinel://127.0.0.1/mymaster?password=x'],
    ['REDIS_URL', 'redis+sentinel://bad_host/mymaster'],
    ['AUTH_FAILURES_PER_MINUTE', '-1'],
    ['TRUST_PROXY', 'true'],
    ['TRUST_PROXY', '17'],
    ['TRUST_PROXY', '10.0.0.0/33'],
    ['TRUST_PROXY', '10.0.0.1,proxy.internal'],
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
