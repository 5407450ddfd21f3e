import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitForPing } from './redis-server.js';

/** One redis-server (a data node or a sentinel) on a loopback port of its own. */
export interface RedisNode {
  port: number;
  /** SIGKILL (`hard`) or SIGTERM; resolves once the process has exited */
  stop(opts?: { hard?: boolean }): Promise<void>;
  /** Starts it again on the same port with the same arguments (a data node comes back empty). */
  start(): Promise<void>;
  running(): boolean;
}

export interface SentinelGroup {
  /** the master name the sentinels monitor */
  name: string;
  /** REDIS_URL for the processes: redis+sentinel://…/<name> */
  url: string;
  /** the data nodes: [0] starts as the primary, [1] as its replica */
  nodes: RedisNode[];
  sentinels: RedisNode[];
  /** The data node the sentinels name as primary now (asked of the first sentinel that answers). */
  primary(): Promise<RedisNode>;
  /** Waits until the sentinels name a primary other than `previous` and it answers as one; returns it. */
  waitForNewPrimary(previous: RedisNode, timeoutMs: number): Promise<RedisNode>;
  /**
   * Makes the replica miss the primary's writes for `ms`: it sleeps (DEBUG SLEEP, a little
   * longer than `ms`) and the primary drops its link, so what is written meanwhile reaches
   * the primary only; resolves after `ms`. A failover then promotes a replica without those
   * writes, as one whose link lagged would be.
   */
  stallReplica(ms: number): Promise<void>;
  /** Waits until `node` runs as a replica of the current primary, fully synced. */
  waitForReplica(node: RedisNode, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

function startNode(port: number, args: string[], logFile: string): RedisNode {
  let child: ChildProcess | undefined;
  const node: RedisNode = {
    port,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async start() {
      const log = fs.openSync(logFile, 'a');
      child = spawn('redis-server', args, { stdio: ['ignore', log, log] });
      fs.closeSync(log);
      const failed = new Promise<never>((_, reject) => {
        child!.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`)));
      });
      await Promise.race([waitForPing(`redis://127.0.0.1:${port}`, 10_000), failed]);
    },
    async stop({ hard = false } = {}) {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill(hard ? 'SIGKILL' : 'SIGTERM');
      await exited;
    },
  };
  return node;
}

async function ask<T>(port: number, run: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await run(client);
  } finally {
    client.disconnect();
  }
}

const infoField = (info: string, field: string) => new RegExp(`^${field}:(.*)\\r?$`, 'm').exec(info)?.[1]?.trim();

export interface SentinelGroupOptions {
  /** how long a primary may not answer before the sentinels call it down */
  downAfterMs?: number;
  failoverTimeoutMs?: number;
}

/**
 * A primary, one replica and three sentinels (quorum 2) on free loopback ports, each a
 * redis-server of its own that keeps nothing on disk; the sentinels' config files (which
 * they rewrite) and all logs live in a temp directory, removed by stop().
 */
export async function startSentinelGroup(opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const { downAfterMs = 1000, failoverTimeoutMs = 3000 } = opts;
  const name = 'workflow-primary';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'workflow-sentinel-'));
  const dataPorts = [await freePort(), await freePort()];
  const base = (port: number) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--maxmemory-policy',
    'noeviction',
    '--dir',
    dir,
    // DEBUG SLEEP, from loopback only: stallReplica() makes a replica fall behind with it
    '--enable-debug-command',
    'local',
    // a replica that (re)joins is synced from memory, without a file on disk in between
    '--repl-diskless-sync',
    'yes',
    '--repl-diskless-sync-delay',
    '0',
  ];
  const nodes = [
    startNode(dataPorts[0]!, base(dataPorts[0]!), path.join(dir, 'node-0.log')),
    startNode(
      dataPorts[1]!,
      [...base(dataPorts[1]!), '--replicaof', '127.0.0.1', String(dataPorts[0])],
      path.join(dir, 'node-1.log'),
    ),
  ];
  const sentinels: RedisNode[] = [];
  const group: SentinelGroup = {
    name,
    url: '',
    nodes,
    sentinels,
    async primary() {
      let lastError: unknown;
      for (const sentinel of sentinels) {
        try {
          const [, port] = (await ask(sentinel.port, (c) => c.call('SENTINEL', 'get-master-addr-by-name', name))) as [
            string,
            string,
          ];
          const node = nodes.find((n) => n.port === Number(port));
          if (node) return node;
        } catch (err) {
          lastError = err;
        }
      }
      throw new Error(`no sentinel names a primary: ${String(lastError)}`);
    },
    async waitForNewPrimary(previous, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const candidate = await group.primary().catch(() => previous);
        if (candidate !== previous) {
          const role = await ask(candidate.port, (c) => c.info('replication')).catch(() => '');
          if (infoField(role, 'role') === 'master') return candidate;
        }
        if (Date.now() > deadline) throw new Error(`no new primary after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stallReplica(ms) {
      const primary = await group.primary();
      const replica = nodes.find((n) => n !== primary)!;
      const sleeper = new Redis({
        port: replica.port,
        host: '127.0.0.1',
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      sleeper.on('error', () => undefined);
      await sleeper.ping();
      const sleeping = sleeper.call('DEBUG', 'SLEEP', String((ms + 500) / 1000)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 20));
      await ask(primary.port, (c) => c.call('CLIENT', 'KILL', 'TYPE', 'replica'));
      await new Promise((r) => setTimeout(r, ms));
      void sleeping.finally(() => sleeper.disconnect());
    },
    async waitForReplica(node, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const primary = await group.primary();
        const info = await ask(node.port, (c) => c.info('replication')).catch(() => '');
        if (
          infoField(info, 'role') === 'slave' &&
          infoField(info, 'master_port') === String(primary.port) &&
          infoField(info, 'master_link_status') === 'up' &&
          infoField(info, 'master_sync_in_progress') === '0'
        ) {
          return;
        }
        if (Date.now() > deadline) throw new Error(`node ${node.port} is not a synced replica after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      await Promise.all([...sentinels, ...nodes].map((n) => n.stop({ hard: true })));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const node of nodes) await node.start();
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = path.join(dir, `sentinel-${i}.conf`);
      fs.writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${dataPorts[0]} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      const sentinel = startNode(port, [conf, '--sentinel'], path.join(dir, `sentinel-${i}.log`));
      sentinels.push(sentinel);
      await sentinel.start();
    }
    group.url = `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${name}`;
    await waitUntilSentinelsAgree(group, 15_000);
  } catch (err) {
    await group.stop();
    throw err;
  }
  return group;
}

/** Every sentinel knows the replica and the other two sentinels, so a failover can be agreed on. */
async function waitUntilSentinelsAgree(group: SentinelGroup, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(
      group.sentinels.map((s) =>
        ask(s.port, async (c) => {
          const master = (await c.call('SENTINEL', 'master', group.name)) as string[];
          const field = (k: string) => master[master.indexOf(k) + 1];
          return { replicas: Number(field('num-slaves')), sentinels: Number(field('num-other-sentinels')) };
        }).catch(() => ({ replicas: 0, sentinels: 0 })),
      ),
    );
    if (views.every((v) => v.replicas >= 1 && v.sentinels >= 2)) return;
    if (Date.now() > deadline) throw new Error(`sentinels did not discover each other: ${JSON.stringify(views)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
