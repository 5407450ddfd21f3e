import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { CONFIG_VARIABLES } from '../../shared/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

/** The variables named in the first column of a document's tables (all of it, or the part under `heading`). */
function tableVariables(file: string, heading?: string): string[] {
  const text = read(file);
  const section = heading ? (text.split(new RegExp(`^## ${heading}$`, 'm'))[1]?.split(/^## /m)[0] ?? '') : text;
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

  it('docs/configuration.md lists exactly the variables shared/config.ts reads, once each', () => {
    expect(tableVariables('docs/configuration.md').sort()).to.deep.equal(expected);
  });

  it("the README's Configuration table names only variables shared/config.ts reads, once each", () => {
    const named = tableVariables('README.md', 'Configuration');
    expect(named).to.not.be.empty;
    expect(new Set(named).size).to.equal(named.length);
    expect(expected).to.include.members(named);
  });

  it('.env.example lists exactly the variables shared/config.ts reads, once each', () => {
    expect(envExampleVariables().sort()).to.deep.equal(expected);
  });
});
