import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { projectRoot } from '../shared/index.js';

/**
 * Bundles the operator page (api/dashboard/) into `outDir`: index.html, app.js and
 * app.css, minified, every dependency inside (the page loads nothing from elsewhere).
 */
export async function buildDashboard(outDir = path.join(projectRoot(), 'dist', 'dashboard')): Promise<string> {
  const source = path.join(projectRoot(), 'api', 'dashboard');
  fs.mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: path.join(source, 'main.tsx') },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    logLevel: 'warning',
  });
  fs.copyFileSync(path.join(source, 'index.html'), path.join(outDir, 'index.html'));
  return outDir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  buildDashboard().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
