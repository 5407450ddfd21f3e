import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../../shared/config.js';
import { NODE_ENVIRONMENT, NODE_FLAGS } from '../../shared/node-flags.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRIES = { api: 'dist/api/server.js', worker: 'dist/worker/main.js', start: 'dist/bin/start.js' } as const;

export interface ServiceProcess {
  child: ChildProcess;
  /** Everything the process printed so far (bunyan JSON lines). */
  output(): string;
  /** What it printed on stderr alone. */
  stderr(): string;
  /** Resolves with the exit code once the process has exited on its own and all its output is read. */
  closed: Promise<number | null>;
  /** Resolves when a line containing `text` was printed. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Stops keeping output (a long run would otherwise buffer every log line). */
  discardOutput(): void;
  /** Sends the signal and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * What a child inherits from the test run: PATH, and c8's NODE_V8_COVERAGE so a child's
 * coverage is counted with the suite's (it is written when the child exits by itself or on
 * a signal it handles; a SIGKILLed child reports nothing).
 */
export function childBaseEnv(): Record<string, string> {
  const base: Record<string, string> = { PATH: process.env.PATH ?? '' };
  if (process.env.NODE_V8_COVERAGE) base.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
  return base;
}

export interface StartOptions {
  /** working directory (default: the repository root, as `npm run` has) */
  cwd?: string;
  /**
   * Let a `.env` in `cwd` fill in the variables `env` leaves out. Off by default: every
   * configuration variable `env` does not give is then passed empty, which the entry points
   * read as unset and which a file cannot override, so a developer's own .env changes nothing.
   */
  envFile?: boolean;
  /** in a process group of its own, as a shell runs a foreground job: `process.kill(-pid, 'SIGINT')` is then Ctrl-C */
  detached?: boolean;
}

/**
 * Starts a built entry point (`npm test` builds first) as a real process, as `npm run api|worker`
 * would: the API and the worker with the heap settings and environment they are deployed with.
 */
export function startProcess(
  kind: keyof typeof ENTRIES,
  env: Record<string, string>,
  nodeArgs: string[] = [],
  { cwd = root, envFile = false, detached = false }: StartOptions = {},
): ServiceProcess {
  const entry = path.join(root, ENTRIES[kind]);
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run npm run build (npm test does)`);
  const unset = envFile ? {} : Object.fromEntries(CONFIG_VARIABLES.map((name) => [name, '']));
  const flags = kind === 'start' ? [] : NODE_FLAGS;
  const deployed = kind === 'start' ? {} : NODE_ENVIRONMENT;
  const child = spawn(process.execPath, [...flags, ...nodeArgs, entry], {
    cwd,
    env: { ...childBaseEnv(), ...unset, ...deployed, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let out = '';
  let err = '';
  let keep = true;
  const collect = (chunk: Buffer) => {
    if (keep) out += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', (chunk: Buffer) => {
    collect(chunk);
    if (keep) err += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));

  return {
    child,
    output: () => out,
    stderr: () => err,
    closed,
    discardOutput: () => {
      keep = false;
      out = '';
    },
    async waitForOutput(text, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`${kind} exited with ${child.exitCode}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`${kind} did not print "${text}" in ${timeoutMs} ms:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
