import { pathToFileURL } from 'node:url';
import type { Processor } from './types.js';

/** The default export of a processor module: imported once per worker, checked to be a function. */
export async function importModuleProcessor(file: string): Promise<Processor> {
  let loaded: { default?: unknown };
  try {
    loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`processor module ${file} cannot be imported: ${(err as Error).message}`, { cause: err });
  }
  if (typeof loaded.default !== 'function') {
    throw new Error(`processor module ${file} must export a function as its default export`);
  }
  return loaded.default as Processor;
}
