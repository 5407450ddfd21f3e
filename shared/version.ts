import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VersionInfo {
  version: string;
  commit: string;
}

/** The package version and the commit it was built from (GIT_COMMIT, else git, else "unknown"). */
export function readVersionInfo(gitCommit: string | null): VersionInfo {
  // this file runs from shared/ (sources) or dist/shared/ (built): walk up to the package
  let dir = path.dirname(fileURLToPath(import.meta.url));
  let version = '0.0.0';
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      version = (JSON.parse(fs.readFileSync(candidate, 'utf8')) as { version: string }).version;
      break;
    }
    dir = path.dirname(dir);
  }
  return { version, commit: gitCommit ?? gitHead(dir) ?? 'unknown' };
}

function gitHead(cwd: string): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return null;
  }
}
