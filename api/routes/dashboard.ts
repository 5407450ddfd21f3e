import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { AppError, projectRoot } from '../../shared/index.js';
import type { RouteDeps } from '../deps.js';

type Encoding = 'br' | 'gzip' | 'identity';

interface Asset {
  type: string;
  /** the file in each encoding, compressed once when first read */
  bodies: Record<Encoding, Buffer>;
  hash: string;
}

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** Where `npm run build` writes the page, whether this runs from the sources or from dist/. */
const dashboardDir = (): string => path.join(projectRoot(), 'dist', 'dashboard');

function encode(type: string, body: Buffer): Asset {
  return {
    type,
    hash: createHash('sha1').update(body).digest('base64url'),
    bodies: {
      identity: body,
      gzip: gzipSync(body, { level: 9 }),
      br: brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
    },
  };
}

/**
 * The files `npm run build` wrote, read and compressed on first use and kept: they do
 * not change under a running process. The page is told whether actions need a key.
 */
export function loadAssets(dir: string, keysRequired: boolean): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(TYPES)) {
    let body: Buffer;
    try {
      body = fs.readFileSync(path.join(dir, name));
    } catch {
      throw new AppError('NOT_FOUND', 'the dashboard is not built: run `npm run build`');
    }
    if (name === 'index.html') {
      body = Buffer.from(
        body.toString('utf8').replace('<html lang="en">', `<html lang="en" data-keys-required="${keysRequired}">`),
      );
    }
    assets.set(name, encode(type, body));
  }
  return assets;
}

/** GET /dashboard: the operator's page (api/dashboard/), its two assets under /dashboard/. */
export function registerDashboardRoutes(router: Router, { config }: RouteDeps): void {
  let assets: Map<string, Asset> | undefined;
  const send = (ctx: Context, name: string) => {
    assets ??= loadAssets(dashboardDir(), config.apiKeys.length > 0);
    const asset = assets.get(name);
    if (!asset) throw new AppError('NOT_FOUND');
    const encoding = (ctx.acceptsEncodings('br', 'gzip', 'identity') || 'identity') as Encoding;
    ctx.vary('Accept-Encoding');
    ctx.status = 200;
    ctx.type = asset.type;
    // revalidated on every load: the names stay, the content changes with each build
    ctx.set('Cache-Control', 'no-cache');
    ctx.etag = `${asset.hash}-${encoding}`;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    if (encoding !== 'identity') ctx.set('Content-Encoding', encoding);
    ctx.body = asset.bodies[encoding];
  };

  router.get('/dashboard', (ctx) => send(ctx, 'index.html'));
  router.get('/dashboard/:asset', (ctx) => {
    const name = ctx.params.asset as string;
    // the page itself is only /dashboard
    if (name === 'index.html') throw new AppError('NOT_FOUND');
    send(ctx, name);
  });
}
