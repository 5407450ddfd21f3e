let sharedRedisUrl: string | undefined;

export function setSharedRedisUrl(url: string): void {
  sharedRedisUrl = url;
}

/** The Redis every test shares: REDIS_URL when given, else the suite's throwaway redis-server. */
export function redisUrl(): string {
  if (!sharedRedisUrl) throw new Error('test Redis not started (is test/setup.ts required by .mocharc?)');
  return sharedRedisUrl;
}

/** TEST_DATABASE_URL=postgres://… runs the suite on PostgreSQL; otherwise each test gets a temp SQLite file. */
export const testDatabaseUrl = (): string | undefined => process.env.TEST_DATABASE_URL;
