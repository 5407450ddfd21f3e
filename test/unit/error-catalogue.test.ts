import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { buildOpenApiDocument } from '../../api/openapi/index.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../../shared/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

function sourcesUnder(dir: string, skip: string[]): string {
  return fs
    .readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !skip.some((s) => path.join(dir, f).startsWith(s)))
    .map((f) => fs.readFileSync(path.join(root, dir, f), 'utf8'))
    .join('\n');
}

describe('error catalogue', () => {
  const reference = fs.readFileSync(path.join(root, 'docs/api.md'), 'utf8');
  const document = buildOpenApiDocument('0.0.0');
  // what raises errors: the OpenAPI module only describes them, so it does not count as a use
  const code = sourcesUnder('api', ['api/openapi']) + sourcesUnder('worker', []);

  for (const c of CODES) {
    const { status } = ERROR_CATALOGUE[c];
    it(`${c} (${status}) is in docs/api.md, the OpenAPI document and the code`, () => {
      expect(reference, 'docs/api.md').to.match(new RegExp(`${status} \`${c}\``));
      const info = (document.info as { description: string }).description;
      expect(info, 'OpenAPI error table').to.include(`| \`${c}\` | ${status} |`);
      const errorCodes = (
        document.components.schemas.Error as { properties: { error: { properties: { code: { enum: string[] } } } } }
      ).properties.error.properties.code.enum;
      expect(errorCodes, 'OpenAPI Error schema').to.include(c);
      expect(code, 'raised in api/ or worker/').to.match(new RegExp(`'${c}'`));
    });
  }
});
