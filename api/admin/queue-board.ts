import type { Middleware } from 'koa';
import { AppError, isDependencyUnavailable, type Config, type ProcessJobData } from '../../shared/index.js';
import { isWrite } from '../middleware/api-key.js';
import { UNAVAILABLE_RETRY_AFTER } from '../middleware/error-handler.js';
import { prefixMatcher } from '../paths.js';
import type { Queue } from 'bullmq';

export const QUEUE_BOARD_PATH = '/admin/queues';

const underBoard = prefixMatcher([QUEUE_BOARD_PATH]);

/** The queue's connection is not up (BullMQ resolves `client` once it was created, which it is here). */
const queueConnectionDown = (queue: Queue<ProcessJobData>): boolean =>
  (queue.opts.connection as { status?: string }).status !== 'ready';

/**
 * The board's page asks a public font service for its typeface; the CSP refuses it (assets
 * come from this service only) and an operator's browser need not call out at all: the
 * page falls back to the system's fonts.
 */
const withoutOutsideFonts = (html: string) => html.replace(/<link[^>]+href="https?:\/\/[^"]*"[^>]*>\s*/g, '');

/**
 * Bull Board for the processing queue at /admin/queues. The API key middleware already
 * guards everything under /admin. Read-only unless ADMIN_WRITE=true: the board hides its
 * buttons then, and any method but a read is refused here with 405 before it reaches
 * the board, so no call of the board's own API can change a job.
 */
export function queueBoard(queue: Queue<ProcessJobData>, config: Pick<Config, 'adminWrite'>): Middleware {
  // the board is loaded on its first request: its packages are several MB of memory that an
  // API nobody opens the board on need not hold
  let loading: Promise<Middleware> | undefined;
  const loadBoard = async (): Promise<Middleware> => {
    const [{ createBullBoard }, { BullMQAdapter }, { KoaAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/koa'),
    ]);
    const serverAdapter = new KoaAdapter();
    serverAdapter.setBasePath(QUEUE_BOARD_PATH);
    createBullBoard({
      queues: [new BullMQAdapter(queue, { readOnlyMode: !config.adminWrite })],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'workflow-service' } },
    });
    return serverAdapter.registerPlugin() as Middleware;
  };

  return async (ctx, next) => {
    if (underBoard(ctx.path) === null) return next();
    if (!config.adminWrite && isWrite(ctx.method)) {
      throw new AppError('METHOD_NOT_ALLOWED', 'the queue UI is read-only (ADMIN_WRITE is not true)', undefined, {
        Allow: 'GET, HEAD',
      });
    }
    loading ??= loadBoard();
    await (
      await loading
    )(ctx, next);
    // the board answers its own errors (500, with the error's message); one that says Redis is
    // away, as during a failover, is the contract's 503 instead
    const message = (ctx.body as { message?: unknown } | undefined)?.message;
    if (ctx.status >= 500 && (queueConnectionDown(queue) || isDependencyUnavailable({ message }))) {
      throw new AppError('SERVICE_UNAVAILABLE', undefined, undefined, { 'Retry-After': UNAVAILABLE_RETRY_AFTER });
    }
    if (typeof ctx.body === 'string' && ctx.response.is('html')) ctx.body = withoutOutsideFonts(ctx.body);
  };
}
