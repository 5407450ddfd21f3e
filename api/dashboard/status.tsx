import type { Status } from './types.js';

const SYMBOL: Record<Status, string> = { pending: '…', processed: '✓', failed: '✗' };

/** A status in words, with a symbol and a colour beside them: the colour alone never says it. */
export function StatusBadge({ status }: { status: Status }) {
  return (
    <span class={`badge badge-${status}`}>
      <span aria-hidden="true">{SYMBOL[status]} </span>
      {status}
    </span>
  );
}
