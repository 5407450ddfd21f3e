/**
 * The record's state machine, declared once. The guards in the database layer, the
 * worker's checks, the event names and the diagram in docs/guarantees.md all read this
 * table: a new transition is one line here.
 */
export const RECORD_STATUSES = ['pending', 'processed', 'failed'] as const;
export type RecordStatus = (typeof RECORD_STATUSES)[number];

/** Who makes a change: the client creating a record, a worker finishing it, an operator retrying it. */
export type Actor = 'client' | 'worker' | 'operator';

export interface TransitionRule {
  /** null: the record is created in `to` */
  readonly from: RecordStatus | null;
  readonly to: RecordStatus;
  readonly by: Actor;
  /** the name of the change in webhooks and the event stream */
  readonly event: string;
}

export const TRANSITIONS = [
  { from: null, to: 'pending', by: 'client', event: 'record.created' },
  { from: 'pending', to: 'processed', by: 'worker', event: 'record.processed' },
  { from: 'pending', to: 'failed', by: 'worker', event: 'record.failed' },
  { from: 'failed', to: 'pending', by: 'operator', event: 'record.retried' },
] as const satisfies readonly TransitionRule[];

type Rule = (typeof TRANSITIONS)[number];

/** The status every record starts in. */
export const INITIAL_STATUS = TRANSITIONS.find((t) => t.from === null)!.to;

/** The statuses a worker moves a record to: where processing ends. */
export type TerminalStatus = Extract<Rule, { by: 'worker' }>['to'];
export const TERMINAL_STATUSES: readonly TerminalStatus[] = TRANSITIONS.filter(
  (t): t is Extract<Rule, { by: 'worker' }> => t.by === 'worker',
).map((t) => t.to);

/** The status a worker takes records from (the one every worker transition leaves). */
export const PROCESSABLE_STATUS = TRANSITIONS.find((t) => t.by === 'worker')!.from;

export type TransitionEvent = Rule['event'];
export const TRANSITION_EVENTS: readonly TransitionEvent[] = TRANSITIONS.map((t) => t.event);

export const isTerminal = (status: RecordStatus): status is TerminalStatus =>
  (TERMINAL_STATUSES as readonly RecordStatus[]).includes(status);

/**
 * The status a record must be in for `by` to move it to `to`: the guard of the one
 * statement that makes the change. Throws for a change the table does not allow.
 */
export function guardFor(to: RecordStatus, by: Actor): RecordStatus {
  const rule = TRANSITIONS.find((t) => t.to === to && t.by === by && t.from !== null);
  if (!rule?.from) throw new Error(`no transition to ${to} by ${by}`);
  return rule.from;
}

/** The rule for a change, or undefined when the table has none. */
export function ruleFor(from: RecordStatus | null, to: RecordStatus): TransitionRule | undefined {
  return TRANSITIONS.find((t) => t.from === from && t.to === to);
}

/** The table as a Mermaid state diagram (docs/guarantees.md shows it; a test keeps them equal). */
export function stateDiagram(): string {
  const lines = TRANSITIONS.map((t) => `  ${t.from ?? '[*]'} --> ${t.to}: ${t.event} (${t.by})`);
  return ['stateDiagram-v2', ...lines].join('\n');
}
