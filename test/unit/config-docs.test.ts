import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { CONFIG_VARIABLES } from '../../shared/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

/** The variables named in the first column of the README's Configuration table. */
function readmeVariables(): string[] {
  const section =
    read('README.md')
      .split(/^## Configuration$/m)[1]
      ?.split(/^## /m)[0] ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...line.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
}

/** Every `NAME=` line of .env.example, commented out or not. */
function envExampleVariables(): string[] {
  return read('.env.example')
    .split('\n')
    .map((line) => /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

describe('configuration is documented', () => {
  const expected = [...CONFIG_VARIABLES].sort();

  it('the README lists exactly the variables shared/config.ts reads, once each', () => {
    expect(readmeVariables().sort()).to.deep.equal(expected);
  });

  it('.env.example lists exactly the variables shared/config.ts reads, once each', () => {
    expect(envExampleVariables().sort()).to.deep.equal(expected);
  });
});
