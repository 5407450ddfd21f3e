/** `npm run migrate`: brings the database named by DATABASE_URL up to date. */
import { createDatabase, loadConfigOrExit } from '../shared/index.js';

const config = loadConfigOrExit();
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax });
try {
  const ran = await db.migrate();
  process.stdout.write(ran.length ? `applied: ${ran.join(', ')}\n` : 'already up to date\n');
} finally {
  await db.close();
}
