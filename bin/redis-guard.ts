/**
 * `npm start` runs its local redis-server under this small process, because redis-server
 * cannot notice its parent dying: this one stops it on SIGTERM, and also when npm start is
 * gone (the IPC channel closes), after the API and worker it was told about have exited,
 * so they still close against a live Redis.
 */
import { spawn } from 'node:child_process';

interface Peers {
  pids: number[];
  /** longest to wait for them */
  timeoutMs: number;
}

let peers: Peers = { pids: [], timeoutMs: 0 };
const redis = spawn('redis-server', process.argv.slice(2), { stdio: ['ignore', 'inherit', 'inherit'] });
redis.once('error', (err) => {
  process.stderr.write(`cannot start redis-server: ${err.message}\n`);
  process.exit(1);
});
redis.once('exit', (code) => process.exit(code ?? 1));
process.on('SIGTERM', () => redis.kill('SIGTERM'));
process.on('message', (message: Peers) => (peers = message));
process.once('disconnect', () => void stopAfterPeers());

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopAfterPeers(): Promise<void> {
  const until = Date.now() + peers.timeoutMs;
  while (Date.now() < until && peers.pids.some(alive)) await new Promise((r) => setTimeout(r, 100));
  redis.kill('SIGTERM');
}
