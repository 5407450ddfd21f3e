import { expect } from 'chai';
import { isDependencyUnavailable, isRefusedByDatabase } from '../../shared/index.js';

// shaped as the drivers make them: pg's DatabaseError carries the server's severity and SQLSTATE,
// sqlite3's errors an errno and an SQLITE_ code; a dropped socket only a message or a system code
const withFields = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);
const triggerRaised = withFields('refused by trigger', { code: 'P0001', severity: 'ERROR' });
const invalidByte = withFields('invalid byte sequence for encoding "UTF8": 0x00', { code: '22021', severity: 'ERROR' });
const sqliteConstraint = withFields('SQLITE_CONSTRAINT: refused by trigger', { code: 'SQLITE_CONSTRAINT', errno: 19 });
const sqliteBusy = withFields('SQLITE_BUSY: database is locked', { code: 'SQLITE_BUSY', errno: 5 });
const adminShutdown = withFields('terminating connection due to administrator command', {
  code: '57P01',
  severity: 'FATAL',
});
const refused = withFields('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED', errno: -111 });
const pipe = withFields('write EPIPE', { code: 'EPIPE', errno: -32 });
const terminated = new Error('Connection terminated unexpectedly');
const poolTimeout = Object.assign(new Error('Knex: Timeout acquiring a connection.'), { name: 'KnexTimeoutError' });

describe('failure kinds', () => {
  it('isDependencyUnavailable: connections refused or dropped, a pool timeout, a busy SQLite, a shutting-down server', () => {
    for (const err of [sqliteBusy, adminShutdown, refused, poolTimeout])
      expect(isDependencyUnavailable(err)).to.equal(true);
    for (const err of [triggerRaised, invalidByte, sqliteConstraint, terminated, undefined, 'text']) {
      expect(isDependencyUnavailable(err)).to.equal(false);
    }
  });

  it('isDependencyUnavailable: Redis away or changing primaries, as ioredis says it', () => {
    const readOnly = Object.assign(new Error("READONLY You can't write against a read only replica."), {
      name: 'ReplyError',
    });
    const maxRetries = Object.assign(new Error('Reached the max retries per request limit (which is 1).'), {
      name: 'MaxRetriesPerRequestError',
    });
    for (const err of [
      readOnly,
      maxRetries,
      new Error('All sentinels are unreachable. Retrying from scratch after 100ms. Last error: x'),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      new Error('Connection is closed.'),
      new Error('LOADING Redis is loading the dataset in memory'),
      { message: 'UNBLOCKED force unblock from blocking operation' },
    ]) {
      expect(isDependencyUnavailable(err), String((err as Error).message)).to.equal(true);
      expect(isRefusedByDatabase(err)).to.equal(false);
    }
    for (const err of [new Error('ERR unknown command'), new Error('NOSCRIPT No matching script'), { message: 42 }]) {
      expect(isDependencyUnavailable(err)).to.equal(false);
    }
  });

  it('isRefusedByDatabase: only an answer of the database itself that is not about its availability', () => {
    for (const err of [triggerRaised, invalidByte, sqliteConstraint]) expect(isRefusedByDatabase(err)).to.equal(true);
    for (const err of [sqliteBusy, adminShutdown, refused, pipe, terminated, poolTimeout, new TypeError('x'), null]) {
      expect(isRefusedByDatabase(err)).to.equal(false);
    }
  });
});
