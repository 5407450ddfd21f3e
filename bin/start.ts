/**
 * `npm start`: the API and one worker for a laptop. Starts a local redis-server
 * (data in ./data/redis) when REDIS_URL is unset and nothing answers on 6379.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '../shared/index.js';

const config = loadConfigOrExit();
const here = path.dirname(fileURLToPath(import.meta.url));
const children: ChildProcess[] = [];
let stopping = false;

function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
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

async function startLocalRedis(): Promise<void> {
  const dir = path.resolve('data/redis');
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--port', '6379', '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''];
  const redis = launch('redis', 'redis-server', [...args, '--maxmemory-policy', 'noeviction']);
  redis.once('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    process.stderr.write(
      'No Redis on 127.0.0.1:6379 and no redis-server installed: install one (apt-get install redis-server, brew install redis) or run `docker compose up`.\n',
    );
    process.exit(1);
  });
  for (let i = 0; i < 100 && !(await portAnswers(6379)); i++) await new Promise((r) => setTimeout(r, 100));
  process.stdout.write(`started redis-server on 127.0.0.1:6379 (data in ${dir})\n`);
}

function launch(name: string, command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: 'inherit' });
  children.push(child);
  child.once('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited (${signal ?? code}); stopping the rest\n`);
      void stopAll(1);
    }
  });
  return child;
}

async function stopAll(exitCode: number): Promise<void> {
  stopping = true;
  // API and worker first (they drain), Redis last
  for (const child of [...children].reverse()) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
  process.exit(exitCode);
}

process.once('SIGINT', () => void stopAll(0));
process.once('SIGTERM', () => void stopAll(0));

if (!config.redisUrlGiven && !(await portAnswers(6379))) await startLocalRedis();
launch('api', process.execPath, [path.join(here, '../api/server.js')]);
launch('worker', process.execPath, [path.join(here, '../worker/main.js')]);
