import type { JsonObject, WorkflowRecord } from '../../shared/index.js';

/**
 * Turns a pending record into its result. Throw BullMQ's UnrecoverableError when the
 * record itself is invalid (it fails at once); any other error is transient and retried.
 */
export type Processor = (record: WorkflowRecord) => Promise<JsonObject> | JsonObject;

export type ProcessorRegistry = ReadonlyMap<string, Processor>;
