import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { stateDiagram } from '../../shared/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

describe('docs', () => {
  it('docs/guarantees.md draws the state machine exactly as shared/state-machine.ts declares it', () => {
    const block = /```mermaid\n([\s\S]*?)\n```/.exec(read('docs/guarantees.md'));
    expect(block, 'a mermaid block').to.not.equal(null);
    expect(block![1]).to.equal(stateDiagram());
  });

  it('every relative link in the README and docs/ points at a file that exists', () => {
    const files = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).map((f) => `docs/${f}`)];
    for (const file of files) {
      for (const [, target] of read(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const resolved = path.join(root, path.dirname(file), target!);
        expect(fs.existsSync(resolved), `${file} → ${target}`).to.equal(true);
      }
    }
  });

  it('the README stays a front door: at most 15 KB', () => {
    expect(Buffer.byteLength(read('README.md'))).to.be.at.most(15 * 1024);
  });
});
