/**
 * `npm run rebuild-report-counts`: recomputes the report counters from the records of the
 * database named by DATABASE_URL. The write paths keep them exact; this is for a database
 * whose records were changed by hand-written SQL. Writers wait for the whole pass (on
 * PostgreSQL it locks the records and the counters; reads go on), about 20 s per million
 * records on SQLite.
 */
import { createDatabase, loadConfigOrExit, rebuildReportCounts } from '../shared/index.js';

const config = loadConfigOrExit();
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax });
try {
  const started = Date.now();
  await rebuildReportCounts(db.knex);
  process.stdout.write(`report counters rebuilt in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
} finally {
  await db.close();
}
