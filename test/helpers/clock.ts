/**
 * Runs `work` with Date.now() answering `ms`, so records written through the real write
 * paths get the created_at / processed_at a test needs. The tests run one at a time, and
 * the repository reads the clock only through Date.now().
 */
export async function atTime<T>(ms: number, work: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = () => ms;
  try {
    return await work();
  } finally {
    Date.now = realNow;
  }
}
