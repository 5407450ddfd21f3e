import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import bunyan from 'bunyan';
import { TurnBufferedStdout } from '../../shared/logger.js';

function sink() {
  const out = new PassThrough();
  const writes: string[] = [];
  out.on('data', (chunk: Buffer) => writes.push(chunk.toString()));
  return { out, writes };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('log lines buffered for one turn of the event loop', () => {
  it('writes the lines of one turn in order, in one write, on the next turn', async () => {
    const { out, writes } = sink();
    const logger = bunyan.createLogger({
      name: 't',
      streams: [{ level: 'info', stream: new TurnBufferedStdout(out) }],
    });
    logger.info({ n: 1 }, 'first');
    logger.info({ n: 2 }, 'second');
    logger.warn({ n: 3 }, 'third');
    logger.debug('below the level');
    await nextTurn();
    await nextTurn();
    expect(writes).to.have.length(1);
    const lines = writes[0]!
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { n: number; msg: string });
    expect(lines.map((l) => [l.n, l.msg])).to.deep.equal([
      [1, 'first'],
      [2, 'second'],
      [3, 'third'],
    ]);
  });

  it('writes each later turn separately, and flush() writes what is pending at once', async () => {
    const { out, writes } = sink();
    const stream = new TurnBufferedStdout(out);
    stream.write('a\n');
    await nextTurn();
    await nextTurn();
    stream.write('b\n');
    stream.write('c\n');
    stream.flush();
    await nextTurn();
    await nextTurn();
    expect(writes).to.deep.equal(['a\n', 'b\nc\n']);
  });
});
