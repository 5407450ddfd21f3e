import { defaultProcessor } from './default.js';
import type { Processor, ProcessorRegistry } from './types.js';

export type { Processor, ProcessorRegistry } from './types.js';
export { defaultProcessor } from './default.js';

/** Category → processor. A category not listed here gets the default processor. */
export const processors: ProcessorRegistry = new Map<string, Processor>();

export function processorFor(registry: ProcessorRegistry, category: string): Processor {
  return registry.get(category) ?? defaultProcessor;
}
