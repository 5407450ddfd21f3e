import bunyan from 'bunyan';
import type { Config } from './config.js';

export type Logger = bunyan;

/**
 * Log lines for stdout, written once per turn of the event loop instead of once per line.
 * Writes to a pipe or file are synchronous system calls in Node on Linux, one per line,
 * and the API writes a line per request, the worker one per job (one bench run before this
 * measured the request line at 13% of the API's ingest rate). Lines leave on the next turn
 * of the event loop, and whatever is pending is written when the process exits
 * (process.exit, signals handled by exitOnSignals, an uncaught error); a SIGKILL can lose
 * at most the lines of the turn it interrupts.
 */
export class TurnBufferedStdout {
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    process.once('exit', () => this.flush());
  }

  /** bunyan hands a stream of type 'stream' each record as one JSON line */
  write(line: unknown): boolean {
    this.pending.push(String(line));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.out.write(chunk);
  }
}

export function createLogger(name: string, level: Config['logLevel']): Logger {
  return bunyan.createLogger({
    name,
    streams: [{ level, stream: new TurnBufferedStdout() }],
    serializers: { err: bunyan.stdSerializers.err },
  });
}
