import { startRedisServer, type RedisServer } from './helpers/redis-server.js';
import { setSharedRedisUrl } from './helpers/env.js';

// an unhandled rejection is a bug somewhere: fail the run instead of printing a warning
process.on('unhandledRejection', (reason) => {
  throw reason;
});

let redis: RedisServer | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(20_000);
    if (process.env.REDIS_URL) {
      setSharedRedisUrl(process.env.REDIS_URL);
    } else {
      redis = await startRedisServer();
      setSharedRedisUrl(redis.url);
    }
  },
  async afterAll() {
    await redis?.stop();
  },
};
