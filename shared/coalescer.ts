/**
 * Coalesces concurrent calls into group calls: callers submit one item each and
 * get their own answer back, while the items that arrive during a call go out
 * together in the next one. That is group commit for writes (one transaction
 * carries many items) and one `WHERE id IN (…)` for reads. An idle coalescer
 * calls on the next turn of the event loop, so a lone item adds no delay. A
 * caller's promise settles only after the call holding its item finished; if
 * that call fails, every caller in the group gets the error.
 */
export class Coalescer<I, O> {
  private waiting: Array<{ item: I; resolve(out: O): void; reject(err: unknown): void }> = [];
  private busy = false;

  constructor(
    /** handles a group; answers one output per item, in order */
    private readonly call: (items: I[]) => Promise<O[]>,
    private readonly maxGroup = 500,
  ) {}

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
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0, this.maxGroup);
      try {
        const outputs = await this.call(group.map((g) => g.item));
        group.forEach((g, i) => g.resolve(outputs[i]!));
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    this.busy = false;
  }
}
