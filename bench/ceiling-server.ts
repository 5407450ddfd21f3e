/**
 * The ingest ceiling: bare Koa + koa-bodyparser + one Knex insert per request into
 * the same records table, with the same SQLite settings the service uses. No
 * validation, ids from crypto, no logging, no queue.
 */
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import bodyParser from 'koa-bodyparser';
import { createDatabase, loadConfig } from '../shared/index.js';

const config = loadConfig();
const db = createDatabase(config.databaseUrl);
await db.migrate();
const app = new Koa();
app.use(bodyParser());
app.use(async (ctx) => {
  const body = ctx.request.body as { source: string; category: string; payload: object };
  const now = Date.now();
  const row = {
    id: randomUUID(),
    source: body.source,
    category: body.category,
    payload: JSON.stringify(body.payload),
    status: 'pending',
    created_at: now,
    updated_at: now,
  };
  await db.knex('records').insert(row);
  ctx.status = 201;
  ctx.body = row;
});
app.listen(config.port, '127.0.0.1', () => process.stdout.write('ceiling listening\n'));
