import { PassThrough } from 'node:stream';
import type { Redis } from 'ioredis';
import {
  AppError,
  eventsChannel,
  type Database,
  type EventFilters,
  type EventStreamSettings,
  type Logger,
  type RecordEvent,
} from '../shared/index.js';

/** Bytes a stream may hold for a client that does not read; past it the client is disconnected. */
export const STREAM_BUFFER_BYTES = 1024 * 1024;
// events read from the log per query
const PAGE = 500;
// the log is also read on this timer, so a lost notification only delays events
const POLL_MS = 1000;

interface Connection {
  stream: PassThrough;
  filters: EventFilters;
  /** the highest id this connection has passed (sent or filtered out) */
  last: number;
  /** false while it catches up from the stored log */
  live: boolean;
}

export interface EventsHub {
  /** A stream of events after `after` (null: from now), history first, then live ones. */
  open(filters: EventFilters, after: number | null): Promise<PassThrough>;
  /** Open streams right now. */
  readonly size: number;
  /** Ends every stream and stops listening (at shutdown). */
  close(): Promise<void>;
}

export interface EventsHubDeps {
  db: Pick<Database, 'events'>;
  /** a connection to duplicate for the subscriber */
  redis: Redis;
  prefix: string;
  settings: EventStreamSettings;
  logger: Logger;
  /** streams end when it aborts (the start of shutdown, so closing the server does not wait on them) */
  shutdown?: AbortSignal;
}

const matches = (e: RecordEvent, f: EventFilters) =>
  (f.category === undefined || e.data.category === f.category) &&
  (f.source === undefined || e.data.source === f.source) &&
  (f.record_id === undefined || e.data.record_id === f.record_id);

const frame = (e: RecordEvent) => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;

/**
 * `GET /events` for one API process. Writers publish on a Redis channel after each
 * commit that added events; on that (or on a timer) the hub reads the log past the
 * last id it read, once for all its streams, and hands each event to every live stream
 * it matches. A stream resuming from an id reads the stored log until it reaches the
 * hub's position and only then goes live; since ids are visible in commit order, and a
 * stream sends only ids above the last it passed, nothing is skipped or sent twice.
 */
export function createEventsHub({ db, redis, prefix, settings, logger, shutdown }: EventsHubDeps): EventsHub {
  const connections = new Set<Connection>();
  let subscriber: Redis | null = null;
  let started: Promise<void> | null = null;
  let cursor = 0;
  let pumping: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let poll: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  function send(conn: Connection, text: string): void {
    if (conn.stream.destroyed) return;
    if (conn.stream.writableLength > STREAM_BUFFER_BYTES) {
      logger.warn({ buffered: conn.stream.writableLength }, 'event stream client too slow: disconnected');
      conn.stream.destroy();
      connections.delete(conn);
      return;
    }
    conn.stream.write(text);
  }

  function dispatch(events: readonly RecordEvent[]): void {
    for (const conn of connections) {
      if (!conn.live) continue;
      for (const e of events) {
        if (e.id <= conn.last) continue;
        if (matches(e, conn.filters)) send(conn, frame(e));
        conn.last = e.id;
      }
    }
  }

  /** Reads the log past the hub's position; one read at a time, repeated while more was signalled. */
  function pump(): Promise<void> {
    if (pumping) {
      again = true;
      return pumping;
    }
    pumping = (async () => {
      try {
        do {
          again = false;
          const events = await db.events.read(cursor, Number.MAX_SAFE_INTEGER, {}, PAGE);
          if (events.length > 0) {
            cursor = events[events.length - 1]!.id;
            dispatch(events);
          }
          if (events.length === PAGE) again = true;
        } while (again && !closed);
      } catch (err) {
        logger.warn(
          { err: { message: (err as Error).message } },
          'reading the event log failed; retrying on the timer',
        );
      } finally {
        pumping = null;
      }
    })();
    return pumping;
  }

  function start(): Promise<void> {
    started ??= (async () => {
      try {
        cursor = await db.events.lastId();
      } catch (err) {
        started = null; // the next stream tries again
        throw err;
      }
      subscriber = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
      subscriber.on('error', () => undefined); // the producer connection reports outages
      subscriber.on('message', () => void pump());
      subscriber.subscribe(eventsChannel(prefix)).catch(() => undefined);
      poll = setInterval(() => void pump(), POLL_MS);
      heartbeat = setInterval(() => {
        for (const conn of connections) send(conn, ': heartbeat\n\n');
      }, settings.heartbeatMs);
      poll.unref();
      heartbeat.unref();
      // only a hub that serves streams listens: an app built many times on one signal adds nothing
      shutdown?.addEventListener('abort', () => void hub.close(), { once: true });
    })();
    return started;
  }

  /** From the stored log up to the hub's position, then live. */
  async function catchUp(conn: Connection): Promise<void> {
    for (;;) {
      const target = cursor;
      const events = await db.events.read(conn.last, target, conn.filters, PAGE);
      for (const e of events) send(conn, frame(e));
      if (events.length === PAGE) {
        conn.last = events[events.length - 1]!.id;
        continue;
      }
      conn.last = Math.max(conn.last, target);
      // the hub has not moved past `target` during the read: whatever comes next is dispatched live
      if (cursor === target) {
        conn.live = true;
        return;
      }
    }
  }

  const hub: EventsHub = {
    get size() {
      return connections.size;
    },
    async open(filters, after) {
      if (closed || shutdown?.aborted) throw new AppError('SERVICE_UNAVAILABLE', 'the API is shutting down');
      if (connections.size >= settings.maxStreams) {
        throw new AppError('SERVICE_UNAVAILABLE', `too many open event streams (${settings.maxStreams})`, undefined, {
          'Retry-After': '5',
        });
      }
      await start();
      const stream = new PassThrough();
      const conn: Connection = { stream, filters, last: after ?? cursor, live: false };
      connections.add(conn);
      const drop = () => connections.delete(conn);
      stream.once('close', drop);
      stream.write(': connected\nretry: 1000\n\n');
      catchUp(conn).catch((err: Error) => {
        logger.warn({ err: { message: err.message } }, 'event stream could not read the log: closed');
        stream.destroy();
        drop();
      });
      return stream;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(poll);
      clearInterval(heartbeat);
      for (const conn of connections) conn.stream.end();
      connections.clear();
      await pumping;
      if (subscriber) {
        await subscriber.quit().catch(() => subscriber?.disconnect());
      }
    },
  };
  return hub;
}
