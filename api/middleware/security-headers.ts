import helmet from 'koa-helmet';
import type { Middleware } from 'koa';
import { prefixMatcher } from '../paths.js';

/** Paths that serve HTML pages (Swagger UI, the queue UI) rather than JSON. */
const UI_PATH_PREFIXES = ['/docs', '/admin/queues'] as const;

/**
 * JSON answers: nothing in them may load, run or be framed. This is what a browser
 * applies if someone opens an API URL, or a response is reflected into a page.
 */
const apiHeaders = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
  },
  xFrameOptions: { action: 'deny' },
});

/**
 * HTML pages: helmet's defaults, plus inline scripts and styles (Swagger UI starts from
 * an inline script and styles elements inline) and images from data: URIs (its icons).
 * Assets must come from this service itself. No upgrade-insecure-requests: the API is
 * often served over plain HTTP, where it would send the page's own assets to https.
 */
const uiHeaders = helmet({
  contentSecurityPolicy: {
    useDefaults: true,
    directives: {
      scriptSrc: ["'self'", "'unsafe-inline'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      upgradeInsecureRequests: null,
    },
  },
  xFrameOptions: { action: 'sameorigin' },
});

const uiPath = prefixMatcher(UI_PATH_PREFIXES);

/** helmet's security headers on every response, errors included; helmet also drops X-Powered-By. */
export function securityHeaders(): Middleware {
  return (ctx, next) => (uiPath(ctx.path) !== null ? uiHeaders(ctx, next) : apiHeaders(ctx, next));
}
