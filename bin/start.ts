/**
 * `npm start`: the API and one worker for a laptop, and a local redis-server (data in
 * ./data/redis, AOF on) when REDIS_URL (default 127.0.0.1:6379) is on this machine and
 * nothing answers there. The children run in process groups of their own, so a terminal's
 * Ctrl-C reaches only this process, which stops them in order (API, worker, Redis) within
 * SHUTDOWN_TIMEOUT_MS; a child still running then is killed. Children notice when this
 * process dies (their IPC channel closes) and stop themselves, in the same order.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  closeInOrder,
  createLogger,
  environmentWith,
  loadConfigOrExit,
  NODE_ENVIRONMENT,
  NODE_FLAGS,
  type CloseOutcome,
} from '../shared/index.js';

const config = loadConfigOrExit();
const logger = createLogger('start', config.logLevel);
const here = path.dirname(fileURLToPath(import.meta.url));

interface Child {
  name: string;
  process: ChildProcess;
  /** the exit code, null when killed by a signal */
  exited: Promise<number | null>;
  running(): boolean;
}

const children: Child[] = [];
let stopping: Promise<never> | undefined;

function launch(name: string, command: string, args: string[], env: Record<string, string> = {}): Child {
  // detached: a process group of its own, out of reach of the terminal's signals;
  // ipc: the channel closes when this process dies, however it dies
  const child = spawn(command, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: environmentWith(env),
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const entry: Child = { name, process: child, exited, running: () => child.exitCode === null && !child.signalCode };
  children.push(entry);
  void exited.then((code) => {
    if (!stopping) {
      logger.error({ child: name, code, signal: child.signalCode }, 'child exited; stopping the rest');
      void stopAll(1);
    }
  });
  return entry;
}

/** The child and whatever it started (the guard's redis-server). */
function killGroup(child: Child, signal: NodeJS.Signals): void {
  try {
    if (child.process.pid !== undefined) process.kill(-child.process.pid, signal);
  } catch {
    // already gone
  }
}

async function stopChild(child: Child, deadline: AbortSignal): Promise<void> {
  if (!child.running()) return;
  if (!deadline.aborted) deadline.addEventListener('abort', () => killGroup(child, 'SIGKILL'), { once: true });
  child.process.kill('SIGTERM');
  await child.exited;
}

function stopAll(exitCode: number): Promise<never> {
  stopping ??= (async () => {
    // API first (no new records), then the worker (it drains), Redis last
    const order = ['api', 'worker', 'redis-server'];
    const running = children.filter((c) => c.running()).sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    const close = closeInOrder(
      running.map((child) => ({ name: child.name, run: (deadline: AbortSignal) => stopChild(child, deadline) })),
      logger,
      { timeoutMs: config.shutdownTimeoutMs },
    );
    const outcome: CloseOutcome = await close();
    // whatever is still running (a step abandoned or skipped) does not outlive this process
    const leftover = children.filter((c) => c.running());
    for (const child of leftover) killGroup(child, 'SIGKILL');
    await Promise.all(leftover.map((c) => c.exited));
    const codes = await Promise.all(running.map((c) => c.exited));
    process.exit(outcome === 'clean' && exitCode === 0 && codes.every((c) => c === 0) ? 0 : 1);
  })();
  return stopping;
}

const onSignal = (signal: NodeJS.Signals) => {
  if (!stopping) {
    logger.info({ signal, children: children.map((c) => c.name) }, 'stopping, in order');
    void stopAll(0);
    return;
  }
  logger.warn({ signal }, 'second signal while stopping: killing the children now');
  for (const child of children) killGroup(child, 'SIGKILL');
  process.exit(1);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

function portAnswers(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Where a local redis-server may be started: a plain redis:// URL on a loopback address, without credentials. */
function localRedisAddress(url: string): { host: string; port: number } | null {
  // one plain server only: sentinels (a list of hosts, which URL cannot parse) are never started here
  if (!/^redis:\/\//i.test(url)) return null;
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (parsed.protocol !== 'redis:' || parsed.username || parsed.password) return null;
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) return null;
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(parsed.port || 6379) };
}

async function startLocalRedis({ host, port }: { host: string; port: number }): Promise<Child> {
  if (spawnSync('redis-server', ['--version']).error) {
    process.stderr.write(
      `No Redis on ${host}:${port} and no redis-server installed: install one (apt-get install redis-server, brew install redis) or run \`docker compose up\`.\n`,
    );
    process.exit(1);
  }
  const dir = path.resolve('data/redis');
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--port', String(port), '--bind', host, '--dir', dir, '--appendonly', 'yes', '--save', ''];
  args.push('--maxmemory-policy', 'noeviction');
  const redis = launch('redis-server', process.execPath, [path.join(here, 'redis-guard.js'), ...args]);
  for (let i = 0; i < 100 && redis.running() && !(await portAnswers(port, host)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (redis.running()) logger.info({ host, port, dir }, 'started redis-server');
  return redis;
}

const local = localRedisAddress(config.redisUrl);
const redis = local && !(await portAnswers(local.port, local.host)) ? await startLocalRedis(local) : undefined;
if (!stopping) {
  const api = launch('api', process.execPath, [...NODE_FLAGS, path.join(here, '../api/server.js')], NODE_ENVIRONMENT);
  const worker = launch(
    'worker',
    process.execPath,
    [...NODE_FLAGS, path.join(here, '../worker/main.js')],
    NODE_ENVIRONMENT,
  );
  // if this process dies, Redis waits for these two to close before it stops (at most their deadline and a bit)
  if (redis?.process.connected) {
    redis.process.send({ pids: [api.process.pid, worker.process.pid], timeoutMs: config.shutdownTimeoutMs + 2000 });
  }
}
