import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createDatabase, NODE_ENVIRONMENT, NODE_FLAGS } from '../../shared/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startProcess, type ServiceProcess } from '../helpers/processes.js';
import { freePort, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { startStack, type Stack } from '../helpers/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Resolves with the exit code, or 'running' if the process is still up after `ms`. */
function exitWithin(exit: Promise<number | null>, ms: number) {
  return Promise.race([exit, sleep(ms).then(() => 'running' as const)]);
}

/** The bunyan lines a process printed, parsed. */
function logLines(output: string): Array<{ name: string; pid: number; msg: string; [key: string]: unknown }> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { name: string; pid: number; msg: string });
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('e2e: shutdown', function () {
  this.timeout(60_000);

  describe('worker', () => {
    let stack: Stack | undefined;
    afterEach(async () => {
      await stack?.stop();
      stack = undefined;
    });

    it('sent SIGTERM while Redis is down, exits within SHUTDOWN_TIMEOUT_MS', async () => {
      stack = await startStack({ workers: 0 });
      const worker = await stack.startWorker({ SHUTDOWN_TIMEOUT_MS: '2000' });
      await worker.waitForOutput('without AOF'); // its connection was ready
      await stack.redis.stop();
      await worker.waitForOutput('redis connection error');
      const started = Date.now();
      const code = await exitWithin(worker.stop('SIGTERM'), 5000);
      const took = Date.now() - started;
      console.log(`      worker with Redis down: exit ${code} after ${took} ms (SHUTDOWN_TIMEOUT_MS 2000)`);
      expect(code).to.not.equal('running');
      expect(took).to.be.lessThan(2000 + 1500);
      // nothing was in flight: with Redis away it closes at once, and cleanly
      expect(code).to.equal(0);
    });

    it('sent SIGTERM while Redis stops answering, gives up at the deadline and exits 1', async () => {
      stack = await startStack({ workers: 0 });
      const worker = await stack.startWorker({ SHUTDOWN_TIMEOUT_MS: '2000' });
      await worker.waitForOutput('without AOF'); // its connection is ready
      const admin = new Redis(stack.redis.url);
      // connections stay open and 'ready', but no command gets an answer
      await admin.call('CLIENT', 'PAUSE', '30000', 'ALL');
      admin.disconnect();
      const started = Date.now();
      const code = await exitWithin(worker.stop('SIGTERM'), 8000);
      const took = Date.now() - started;
      console.log(`      worker with Redis frozen: exit ${code} after ${took} ms (SHUTDOWN_TIMEOUT_MS 2000)`);
      expect(code).to.equal(1);
      expect(took).to.be.within(1900, 2000 + 1500);
      const abandoned = logLines(worker.output()).filter((l) => l.msg.includes('abandoned'));
      expect(abandoned).to.not.deep.equal([]);
    });
  });

  describe('api', () => {
    let stack: Stack | undefined;
    afterEach(async () => {
      await stack?.stop();
      stack = undefined;
    });

    it('sent SIGTERM while Redis stops answering, exits 1 within SHUTDOWN_TIMEOUT_MS and a second', async () => {
      stack = await startStack({ workers: 0, env: { SHUTDOWN_TIMEOUT_MS: '1500' } });
      await stack.api.waitForOutput('without AOF');
      const admin = new Redis(stack.redis.url);
      await admin.call('CLIENT', 'PAUSE', '30000', 'ALL');
      admin.disconnect();
      const started = Date.now();
      const code = await exitWithin(stack.api.stop('SIGTERM'), 8000);
      const took = Date.now() - started;
      expect(code).to.equal(1);
      expect(took).to.be.within(1400, 1500 + 1500);
    });

    it('sent SIGTERM right after creates with ?process=true, writes their enqueue confirmations before it exits', async () => {
      stack = await startStack({ workers: 0 });
      const created = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const res = await fetch(`${stack!.base}/records?process=true`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ source: 's', category: 'c', payload: { i } }),
          });
          expect(res.status).to.equal(201);
          return ((await res.json()) as { id: string }).id;
        }),
      );
      // well within the time confirmations gather for
      expect(await exitWithin(stack.api.stop('SIGTERM'), 8000)).to.equal(0);
      const db = createDatabase(stack.database.url);
      try {
        const rows = (await db
          .reader('records')
          .select('id')
          .whereIn('id', created)
          .whereNotNull('enqueued_at')) as Array<{ id: string }>;
        expect(rows.map((r) => r.id)).to.have.members(created);
      } finally {
        await db.close();
      }
    });
  });

  describe('npm start (bin/start.ts)', () => {
    let parent: ServiceProcess | undefined;
    let database: TestDatabase | undefined;
    let redis: RedisServer | undefined;
    let dir: string | undefined;
    const pids = () =>
      new Set([
        ...logLines(parent?.output() ?? '').map((l) => l.pid),
        ...[...(parent?.output() ?? '').matchAll(/pid=(\d+), just started/g)].map((m) => Number(m[1])),
      ]);

    afterEach(async () => {
      // nothing a failed test started outlives it
      for (const pid of pids()) if (alive(pid)) process.kill(pid, 'SIGKILL');
      await parent?.stop('SIGKILL');
      await redis?.stop({ hard: true });
      await database?.drop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      parent = database = redis = dir = undefined;
    });

    async function start(env: Record<string, string>, cwd?: string) {
      database = await createTestDatabase();
      const port = await freePort();
      parent = startProcess(
        'start',
        {
          PORT: String(port),
          HOST: '127.0.0.1',
          METRICS_PORT: String(await freePort()),
          DATABASE_URL: database.url,
          QUEUE_PREFIX: `e2e-${randomUUID()}`,
          ...env,
        },
        [],
        { cwd, detached: true },
      );
      await parent.waitForOutput('api listening', 30_000);
      await parent.waitForOutput('worker started', 30_000);
      const base = `http://127.0.0.1:${port}`;
      // both answer: the API stores and queues, the worker processes
      const created = await fetch(`${base}/records?process=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'e2e', category: 'start', payload: { priority: 5 } }),
      });
      expect(created.status).to.equal(201);
      const { id } = (await created.json()) as { id: string };
      await waitFor(
        async () =>
          ((await (await fetch(`${base}/records/${id}`)).json()) as { status: string }).status === 'processed',
        15_000,
        'the record to be processed',
      );
      const lines = logLines(parent.output());
      const api = lines.find((l) => l.name === 'api')!.pid;
      const worker = lines.find((l) => l.name === 'worker')!.pid;
      return { api, worker, parent };
    }

    /** Ctrl-C in a terminal: SIGINT to every process of the foreground job's group; resolves once all have exited. */
    function ctrlC(p: ServiceProcess, timeoutMs: number) {
      process.kill(-p.child.pid!, 'SIGINT');
      return Promise.race([p.closed, sleep(timeoutMs).then(() => 'running' as const)]);
    }

    const shuttingDown = (output: string) =>
      logLines(output)
        .filter((l) => l.msg === 'shutting down')
        .map((l) => l.name);

    it('with REDIS_URL given: Ctrl-C stops the API, then the worker, and exits 0', async () => {
      redis = await startRedisServer();
      const { api, worker, parent: p } = await start({ REDIS_URL: redis.url });
      // both run with the heap settings and environment of shared/node-flags.ts
      for (const pid of [api, worker]) {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        expect(argv.slice(1, 1 + NODE_FLAGS.length)).to.deep.equal([...NODE_FLAGS]);
        const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        for (const [name, value] of Object.entries(NODE_ENVIRONMENT)) expect(environ).to.include(`${name}=${value}`);
      }
      const code = await ctrlC(p, 20_000);
      expect(code).to.equal(0);
      expect(alive(api)).to.equal(false);
      expect(alive(worker)).to.equal(false);
      expect(shuttingDown(p.output())).to.deep.equal(['api', 'worker']);
      expect(p.output()).to.not.include('abandoned');
    });

    it('with nothing answering at REDIS_URL: starts its own redis-server there (AOF on) and stops it last', async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npm-start-'));
      const port = await freePort();
      const { api, worker, parent: p } = await start({ REDIS_URL: `redis://127.0.0.1:${port}` }, dir);
      expect(logLines(p.output()).find((l) => l.msg === 'started redis-server')).to.include({ port });
      expect(fs.existsSync(path.join(dir, 'data/redis/appendonlydir'))).to.equal(true);
      const code = await ctrlC(p, 20_000);
      expect(code).to.equal(0);
      expect([alive(api), alive(worker), await portAnswers(port)]).to.deep.equal([false, false, false]);
      expect(shuttingDown(p.output())).to.deep.equal(['api', 'worker']);
      // Redis went last: the worker's close found it (no step abandoned) and it saved on the way out
      expect(p.output()).to.not.include('abandoned');
      expect(p.output().indexOf('ready to exit')).to.be.greaterThan(p.output().lastIndexOf('"name":"worker"'));
    });

    it('killed with SIGKILL: its children notice, the API and worker close, then its redis-server stops', async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npm-start-'));
      const port = await freePort();
      const { api, worker, parent: p } = await start({ REDIS_URL: `redis://127.0.0.1:${port}` }, dir);
      p.child.kill('SIGKILL');
      // the output pipe closes once every process holding it (api, worker, redis-server) has exited
      expect(await Promise.race([p.closed.then(() => 'closed'), sleep(20_000).then(() => 'open')])).to.equal('closed');
      expect([alive(api), alive(worker), await portAnswers(port)]).to.deep.equal([false, false, false]);
      const stops = logLines(p.output()).filter((l) => l.msg === 'shutting down');
      expect(stops.map((l) => [l.name, l.signal])).to.have.deep.members([
        ['api', 'parent gone'],
        ['worker', 'parent gone'],
      ]);
      expect(p.output()).to.not.include('abandoned');
      expect(p.output().indexOf('ready to exit')).to.be.greaterThan(p.output().lastIndexOf('"name":"worker"'));
    });

    it('a child that outlives SHUTDOWN_TIMEOUT_MS is killed, and npm start exits 1 soon after the deadline', async () => {
      redis = await startRedisServer();
      const { api, worker, parent: p } = await start({ REDIS_URL: redis.url, SHUTDOWN_TIMEOUT_MS: '1500' });
      process.kill(worker, 'SIGSTOP'); // it cannot act on its SIGTERM
      const started = Date.now();
      const code = await ctrlC(p, 10_000);
      const took = Date.now() - started;
      expect(code).to.equal(1);
      expect(took).to.be.within(1400, 1500 + 1500);
      expect([alive(api), alive(worker)]).to.deep.equal([false, false]);
      expect(logLines(p.output()).find((l) => l.name === 'start' && l.msg.includes('abandoned'))).to.include({
        step: 'worker',
      });
    });
  });

  describe('.env', () => {
    let stack: Stack | undefined;
    let dir: string | undefined;
    afterEach(async () => {
      await stack?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      stack = dir = undefined;
    });

    it('npm run api and npm run worker read ./.env; a variable set in the environment wins over it', async () => {
      stack = await startStack({ workers: 0 });
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dotenv-'));
      const port = await freePort();
      const metricsPort = await freePort();
      fs.writeFileSync(
        path.join(dir, '.env'),
        [
          `PORT=${port}`,
          `METRICS_PORT=${metricsPort}`,
          'GIT_COMMIT=from-dotenv',
          'NODE_ENV=from-dotenv',
          // the stack's own values come from the environment, as they would in a shell
          'REDIS_URL=redis://127.0.0.1:1',
          '',
        ].join('\n'),
      );
      const env = Object.fromEntries(
        Object.entries(stack.env).filter(([name]) => name !== 'PORT' && name !== 'METRICS_PORT'),
      );
      const api = startProcess('api', { ...env, NODE_ENV: 'from-environment' }, [], { cwd: dir, envFile: true });
      const worker = startProcess('worker', env, [], { cwd: dir, envFile: true });
      try {
        await api.waitForOutput('api listening');
        await worker.waitForOutput('worker started');
        const version = (await (await fetch(`http://127.0.0.1:${port}/version`)).json()) as Record<string, string>;
        expect(version).to.include({ commit: 'from-dotenv', environment: 'from-environment' });
        expect((await fetch(`http://127.0.0.1:${port}/health`)).status).to.equal(200);
        expect((await fetch(`http://127.0.0.1:${metricsPort}/health/live`)).status).to.equal(200);
      } finally {
        await Promise.all([api.stop('SIGKILL'), worker.stop('SIGKILL')]);
      }
    });
  });
});
