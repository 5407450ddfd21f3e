import type { JsonObject, WorkflowRecord } from '../shared/index.js';
import {
  ProcessorTimeoutError,
  ShutdownAbortError,
  type CategoryProcessor,
  type ProcessorContext,
} from './processors/index.js';

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Runs one attempt of a processor, bounded by its timeout and the worker's shutdown: at
 * either, `ctx.signal` aborts and the attempt ends at once with a transient error, even if
 * the processor ignores the signal; what it returns after that is dropped.
 */
export async function runProcessor(
  processor: CategoryProcessor,
  record: WorkflowRecord,
  ctx: Omit<ProcessorContext, 'signal'>,
  shutdown?: AbortSignal,
): Promise<JsonObject> {
  const controller = new AbortController();
  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true });
  });
  const timer = setTimeout(() => controller.abort(new ProcessorTimeoutError(processor.timeoutMs)), processor.timeoutMs);
  const onShutdown = () => controller.abort(new ShutdownAbortError());
  if (shutdown?.aborted) onShutdown();
  else shutdown?.addEventListener('abort', onShutdown, { once: true });
  try {
    const running = Promise.resolve().then(() => processor.run(record, { ...ctx, signal: controller.signal }));
    // a processor that fails after its deadline has nobody left to tell
    running.catch(() => undefined);
    const result: unknown = await Promise.race([running, aborted]);
    return asResult(result);
  } finally {
    clearTimeout(timer);
    shutdown?.removeEventListener('abort', onShutdown);
  }
}

/** The result as it is stored: a JSON object, or a transient error saying what came back instead. */
function asResult(value: unknown): JsonObject {
  if (!isObject(value)) {
    const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new Error(`processor returned ${what}, not an object`);
  }
  try {
    return JSON.parse(JSON.stringify(value)) as JsonObject;
  } catch (err) {
    throw new Error(`processor result is not JSON: ${(err as Error).message}`, { cause: err });
  }
}
