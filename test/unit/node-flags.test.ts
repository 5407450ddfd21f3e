import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import YAML from 'yaml';
import { NODE_ENVIRONMENT, NODE_FLAGS } from '../../shared/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

describe('heap settings and environment', () => {
  const entries = ['dist/api/server.js', 'dist/worker/main.js'];
  const assignments = Object.entries(NODE_ENVIRONMENT).map(([name, value]) => `${name}=${value}`);

  it('npm run api and npm run worker start node with them', () => {
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const start = `${assignments.join(' ')} node ${NODE_FLAGS.join(' ')}`;
    expect(scripts.api).to.match(new RegExp(`&& ${start} dist/api/server\\.js$`));
    expect(scripts.worker).to.match(new RegExp(`&& ${start} dist/worker/main\\.js$`));
  });

  it('the image and docker compose start both processes with them', () => {
    const dockerfile = read('Dockerfile');
    // the ENV of the image's last stage, continuation lines and all
    const runStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const env = [...runStage.matchAll(/^ENV ((?:.*\\\n)*.*)$/gm)].flatMap((m) => m[1]!.split(/\s+\\?\s*/));
    expect(env).to.include.members(assignments);
    const cmd = /^CMD (.*)$/m.exec(dockerfile)![1]!;
    expect(JSON.parse(cmd)).to.deep.equal(['node', ...NODE_FLAGS, entries[0]]);
    const compose = YAML.parse(read('docker-compose.yml')) as { services: Record<string, { command: string[] }> };
    expect(compose.services.api!.command).to.deep.equal(['node', ...NODE_FLAGS, entries[0]]);
    expect(compose.services.worker!.command).to.deep.equal(['node', ...NODE_FLAGS, entries[1]]);
  });
});
