/** `npm run openapi [-- <file>]`: writes the OpenAPI document the API serves at /openapi.json. */
import fs from 'node:fs';
import path from 'node:path';
import { buildOpenApiDocument } from '../api/openapi/index.js';
import { readVersionInfo } from '../shared/index.js';

const out = path.resolve(process.argv[2] ?? 'dist/openapi.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(buildOpenApiDocument(readVersionInfo(null).version), null, 2)}\n`);
process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
