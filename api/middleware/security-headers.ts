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

/**
 * The operator's page (api/dashboard/) is ours entirely, so its policy is as tight as a
 * page can be: its script, its stylesheet and calls to this API, nothing inline, nothing
 * from elsewhere, no framing, no form posts. `data:` images only for its empty favicon.
 */
const dashboardHeaders = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  xFrameOptions: { action: 'deny' },
});

const uiPath = prefixMatcher(UI_PATH_PREFIXES);
const dashboardPath = prefixMatcher(['/dashboard']);

/** helmet's security headers on every response, errors included; helmet also drops X-Powered-By. */
export function securityHeaders(): Middleware {
  return (ctx, next) => {
    if (dashboardPath(ctx.path) !== null) return dashboardHeaders(ctx, next);
    return uiPath(ctx.path) !== null ? uiHeaders(ctx, next) : apiHeaders(ctx, next);
  };
}
