import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type Router from '@koa/router';
import { AppError } from '../../shared/index.js';
import { buildOpenApiDocument, type OpenApiDocument } from '../openapi/index.js';
import type { RouteDeps } from '../deps.js';

const swaggerUiDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** Our own page and start-up script: no inline script, every asset from this service. */
const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>workflow-service API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;

// validatorUrl null: the default asks a public validator for a badge, which the CSP
// (and a server without Internet access) would refuse
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

const asset = (type: string, body: Buffer): Asset => ({
  type,
  body,
  etag: `"${createHash('sha1').update(body).digest('base64url')}"`,
});

const ASSET_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

// read on first use and kept: the files are part of the installed package and never change under a running process
let assets: Map<string, Asset> | undefined;
function loadAssets(): Map<string, Asset> {
  assets ??= new Map([
    ['init.js', asset('text/javascript; charset=utf-8', Buffer.from(INIT))],
    ...Object.entries(ASSET_FILES).map(
      ([name, type]) => [name, asset(type, fs.readFileSync(path.join(swaggerUiDir, name)))] as const,
    ),
  ]);
  return assets;
}

/** GET /openapi.json, and Swagger UI at GET /docs with its assets under /docs/. */
export function registerDocsRoutes(router: Router, { version, config }: RouteDeps): void {
  let document: OpenApiDocument | undefined;

  router.get('/openapi.json', (ctx) => {
    document ??= buildOpenApiDocument(version.version, config.categories);
    ctx.body = document;
  });

  router.get('/docs', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = PAGE;
  });

  router.get('/docs/:asset', (ctx) => {
    const found = loadAssets().get(ctx.params.asset as string);
    if (!found) throw new AppError('NOT_FOUND');
    ctx.status = 200;
    ctx.type = found.type;
    ctx.etag = found.etag;
    ctx.set('Cache-Control', 'public, max-age=3600');
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = found.body;
  });
}
