import { expect } from 'chai';
import fc from 'fast-check';
import { MAX_ERROR_TEXT, storableErrorText } from '../../shared/index.js';

const isWellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

describe('storableErrorText', () => {
  it('keeps a short, valid text as it is', () => {
    expect(storableErrorText('upstream said: 502 Bad Gateway — réessayez 🙂')).to.equal(
      'upstream said: 502 Bad Gateway — réessayez 🙂',
    );
    expect(storableErrorText('')).to.equal('');
  });

  it('cuts a longer text to 2,000 characters', () => {
    expect(MAX_ERROR_TEXT).to.equal(2000);
    const text = 'x'.repeat(10_000);
    expect(storableErrorText(text)).to.equal('x'.repeat(2000));
    expect(storableErrorText('y'.repeat(2000))).to.equal('y'.repeat(2000));
  });

  it('removes NULs, counting the length after they are gone', () => {
    expect(storableErrorText('a\u0000b\u0000\u0000c')).to.equal('abc');
    expect(storableErrorText(`${'\u0000'.repeat(5000)}${'z'.repeat(1990)}`)).to.equal('z'.repeat(1990));
  });

  it('removes lone surrogates and keeps pairs', () => {
    expect(storableErrorText('a\uD800b')).to.equal('ab');
    expect(storableErrorText('a\uDC00b')).to.equal('ab');
    expect(storableErrorText('\uDC00\uD800')).to.equal(''); // low before high is no pair
    expect(storableErrorText('end\uD83D')).to.equal('end');
    expect(storableErrorText('🙂\uD83D\uDE42')).to.equal('🙂🙂');
  });

  it('never cuts a surrogate pair in two', () => {
    // the 2,000th code unit is the first half of an emoji: the whole emoji goes
    const text = `${'x'.repeat(1999)}🙂tail`;
    expect(storableErrorText(text)).to.equal('x'.repeat(1999));
    // the emoji ends exactly at the limit: it stays
    expect(storableErrorText(`${'x'.repeat(1998)}🙂tail`)).to.equal(`${'x'.repeat(1998)}🙂`);
  });

  it('answers well-formed text of at most 2,000 characters without NULs, for any input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('\u0000', '\uD800', '\uDFFF', '🙂')), {
          maxLength: 800,
        }),
        (parts) => {
          const text = parts.join('');
          const stored = storableErrorText(text);
          expect(stored.length).to.be.at.most(2000);
          expect(stored).not.to.include('\u0000');
          expect(isWellFormed(stored)).to.equal(true);
          // a valid text keeps its start, cut by at most one code unit (the half of a pair)
          if (isWellFormed(text) && !text.includes('\u0000')) {
            expect(text.startsWith(stored)).to.equal(true);
            expect(stored.length).to.be.at.least(Math.min(text.length, 1999));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
