export interface CoalescerOptions {
  /** most items in one call */
  maxGroup?: number;
  /**
   * Whether an error is no item's fault (the database unreachable, a pool timeout): it
   * fails every caller of the group at once, where retrying smaller groups would only
   * repeat it. Without this option every failure is retried in halves.
   */
  failsWholeGroup?(err: unknown): boolean;
}

interface Waiter<I, O> {
  item: I;
  resolve(out: O): void;
  reject(err: unknown): void;
}

/**
 * Coalesces concurrent calls into group calls: callers submit one item each and
 * get their own answer back, while the items that arrive during a call go out
 * together in the next one. That is group commit for writes (one transaction
 * carries many items) and one `WHERE id IN (…)` for reads. An idle coalescer
 * calls on the next turn of the event loop, so a lone item adds no delay. A
 * caller's promise settles only after the call holding its item finished. When a
 * call for several items fails, its items are called again in halves, and so on,
 * so only the callers whose item fails on its own get an error (the one their own
 * call threw), and everyone else gets their answer; an error `failsWholeGroup`
 * accepts fails every caller left in the group at once.
 */
export class Coalescer<I, O> {
  private waiting: Array<Waiter<I, O>> = [];
  private busy = false;
  private readonly maxGroup: number;
  private readonly failsWholeGroup: (err: unknown) => boolean;

  constructor(
    /** handles a group; answers one output per item, in order */
    private readonly call: (items: I[]) => Promise<O[]>,
    { maxGroup = 500, failsWholeGroup = () => false }: CoalescerOptions = {},
  ) {
    this.maxGroup = maxGroup;
    this.failsWholeGroup = failsWholeGroup;
  }

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.busy) {
        this.busy = true;
        setImmediate(() => void this.callGroups());
      }
    });
  }

  private async callGroups(): Promise<void> {
    while (this.waiting.length > 0) await this.settle(this.waiting.splice(0, this.maxGroup));
    this.busy = false;
  }

  /** Calls for a group; a failed call for several items is followed by calls for its halves, in order. */
  private async settle(group: Array<Waiter<I, O>>): Promise<void> {
    // parts still to call, the next one last
    const parts = [group];
    for (let part = parts.pop(); part; part = parts.pop()) {
      try {
        const outputs = await this.call(part.map((w) => w.item));
        part.forEach((w, i) => w.resolve(outputs[i]!));
      } catch (err) {
        if (this.failsWholeGroup(err)) {
          for (const w of [part, ...parts].flat()) w.reject(err);
          return;
        }
        if (part.length === 1) part[0]!.reject(err);
        else {
          const half = Math.ceil(part.length / 2);
          parts.push(part.slice(half), part.slice(0, half));
        }
      }
    }
  }
}
