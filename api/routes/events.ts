import type Router from '@koa/router';
import { AppError, eventsQuerySchema, validate, type EventFilters } from '../../shared/index.js';
import type { RouteDeps } from '../deps.js';

/** `Last-Event-ID` wins over `?last_event_id=` (a browser's EventSource sends the header on reconnect). */
function resumeAfter(header: string, query: number | undefined): number | null {
  if (header === '') return query ?? null;
  if (!/^\d{1,15}$/.test(header)) {
    throw new AppError('VALIDATION_ERROR', undefined, [
      { field: 'header.Last-Event-ID', message: '"Last-Event-ID" must be an event id', type: 'number.base' },
    ]);
  }
  return Number(header);
}

export function registerEventsRoutes(router: Router, { events }: RouteDeps): void {
  router.get('/events', async (ctx) => {
    const { last_event_id: lastEventId, ...filters } = validate<EventFilters & { last_event_id?: number }>(
      eventsQuerySchema,
      ctx.query,
      'query',
    );
    const after = resumeAfter(ctx.get('Last-Event-ID'), lastEventId);
    const stream = await events.open(filters, after);
    ctx.req.socket.setNoDelay(true);
    ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
    ctx.set('Cache-Control', 'no-cache');
    // proxies such as nginx would otherwise hold events back to fill a buffer
    ctx.set('X-Accel-Buffering', 'no');
    ctx.status = 200;
    ctx.body = stream;
  });
}
