import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import bunyan from 'bunyan';
import { expect } from 'chai';
import { parse } from 'csv-parse/sync';
import Koa from 'koa';
import supertest from 'supertest';
import { csvField, csvRow, sendCsv } from '../../api/csv.js';
import { loadAssets } from '../../api/routes/dashboard.js';
import { AppError } from '../../shared/index.js';

describe('CSV answers', () => {
  it('quotes exactly the fields that need it, and a parser reads back what was written', () => {
    expect(csvField(null)).to.equal('');
    expect(csvField(undefined)).to.equal('');
    expect(csvField(42)).to.equal('42');
    expect(csvField('plain')).to.equal('plain');
    expect(csvField('a,b')).to.equal('"a,b"');
    expect(csvField('say "hi"')).to.equal('"say ""hi"""');
    expect(csvField({ k: 'v,"w"' })).to.equal('"{""k"":""v,\\""w\\""""}"');
    const values = ['x', 'line\r\nbreak', 'cr\ronly', 'lf\nonly', ' spaced ', '', 'é ✓'];
    const text = csvRow(['a', 'b', 'c', 'd', 'e', 'f', 'g']) + csvRow(values);
    expect(text.endsWith('\r\n')).to.equal(true);
    expect(parse(text, { columns: true })).to.deep.equal([
      Object.fromEntries(values.map((v, i) => ['abcdefg'[i]!, v])),
    ]);
  });

  it('a stream that fails after its first rows ends the answer early and says why in the log', async () => {
    const lines: Array<{ msg: string }> = [];
    const logger = bunyan.createLogger({
      name: 'test',
      streams: [
        { type: 'raw', level: 'trace', stream: { write: (r: object) => void lines.push(r as { msg: string }) } },
      ],
    });
    async function* failing() {
      yield ['1'];
      throw new Error('connection lost');
    }
    const app = new Koa();
    app.silent = true;
    app.use((ctx) => sendCsv(ctx, 'x.csv', ['n'], failing(), logger));
    const outcome = await supertest(app.callback())
      .get('/')
      .then(
        (res) => `answered ${res.status}: ${res.text}`,
        (err: Error) => `cut: ${err.message}`,
      );
    // the header row and the first row may arrive before the connection is cut
    expect(outcome).not.to.match(/answered 200: n\r\n1\r\n$/);
    expect(lines.map((l) => l.msg)).to.include('CSV answer ended early');
  });
});

describe('dashboard assets', () => {
  it('a checkout without a build answers 404 saying how to build it', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-'));
    try {
      expect(() => loadAssets(empty, false))
        .to.throw(AppError)
        .with.property('message')
        .that.matches(/npm run build/);
    } finally {
      fs.rmSync(empty, { recursive: true });
    }
  });
});
