import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';
import { startStack, type Stack } from '../helpers/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
