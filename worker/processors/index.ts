import type { Categories, CategorySpec } from '../../shared/index.js';
import { defaultProcessor } from './default.js';
import { createHttpProcessor } from './http-processor.js';
import { importModuleProcessor } from './module-processor.js';
import type { CategoryProcessor, Processor, ProcessorRegistry } from './types.js';

export type { CategoryProcessor, Processor, ProcessorContext, ProcessorRegistry } from './types.js';
export { defaultProcessor } from './default.js';
export { classifyAnswer, retryAfterMs, MAX_ANSWER_BYTES, MAX_RETRY_AFTER_MS } from './http-processor.js';
export * from './processor-errors.js';

/** The seed's priority rule: the processor of every category the categories file gives no other. */
export const builtinProcessor: Processor = defaultProcessor;

/** No processors given in code: every category as the categories file says. */
export const processors: ProcessorRegistry = new Map<string, Processor>();

export interface Processors {
  /** The processor of a record's category. */
  for(category: string): CategoryProcessor;
  /** Imports every module processor the file names (a worker's start awaits it, so a bad one stops it). */
  load(): Promise<void>;
}

const UNLISTED = '(unlisted)';

/**
 * The processors of one worker, from the categories file (and any given in code, which
 * win). Each module is imported once per worker, on `load()` or on its first record.
 */
export function createProcessors(categories: Categories, inCode: ProcessorRegistry = processors): Processors {
  const modules = new Map<string, Promise<Processor>>();
  const importOnce = (file: string): Promise<Processor> => {
    let loading = modules.get(file);
    if (!loading) {
      loading = importModuleProcessor(file);
      // a failed import is tried again by the next record rather than remembered
      loading.catch(() => modules.delete(file));
      modules.set(file, loading);
    }
    return loading;
  };
  const build = (spec: CategorySpec, label: string): CategoryProcessor => {
    const { processor, timeoutMs } = spec;
    switch (processor.kind) {
      case 'builtin':
        return { kind: 'builtin', run: builtinProcessor, timeoutMs, label };
      case 'module': {
        const file = processor.path;
        return { kind: 'module', run: async (record, ctx) => (await importOnce(file))(record, ctx), timeoutMs, label };
      }
      case 'http':
        return { kind: 'http', run: createHttpProcessor(processor.url, processor.secret, timeoutMs), timeoutMs, label };
    }
  };
  const listed = new Map([...categories.listed].map(([name, spec]) => [name, build(spec, name)]));
  const fallback = build(categories.defaults, UNLISTED);
  const given = new Map(
    [...inCode].map(([name, run]) => [
      name,
      { kind: 'module' as const, run, timeoutMs: categories.specFor(name).timeoutMs, label: name },
    ]),
  );
  return {
    for: (category) => given.get(category) ?? listed.get(category) ?? fallback,
    async load() {
      const specs = [categories.defaults, ...categories.listed.values()];
      await Promise.all(
        specs.map(async (spec) => {
          if (spec.processor.kind !== 'module') return;
          try {
            await importOnce(spec.processor.path);
          } catch (err) {
            const where = spec.category === null ? 'defaults' : `category "${spec.category}"`;
            throw new Error(`${categories.file ?? 'categories'}: ${where}: ${(err as Error).message}`, { cause: err });
          }
        }),
      );
    },
  };
}
