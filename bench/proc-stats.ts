/** What Linux's /proc tells of a process: the benches' CPU and memory readings. */
import fs from 'node:fs';

// /proc/<pid>/stat counts CPU time in clock ticks, which Linux reports at 100 per second
const TICK_MS = 10;

/** RSS in MB; 0 once the process is gone. */
export function rssMb(pid: number | undefined): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  } catch {
    return 0;
  }
}

/** CPU time (user + system, all threads) a process has used so far, in ms. */
export function cpuMs(pid: number | undefined): number {
  if (pid === process.pid) {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}
