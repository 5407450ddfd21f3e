import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { applyEnvFile, ConfigError, loadConfig } from '../../shared/config.js';

describe('.env file', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'env-file-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (text: string) => {
    const file = path.join(dir, '.env');
    fs.writeFileSync(file, text);
    return file;
  };

  it('adds its variables; one already in the environment wins, even when empty', () => {
    const file = write('PORT=4100\nLOG_LEVEL=debug\n# a comment\nQUEUE_PREFIX="from-file"\nAPI_KEYS=file-key\n');
    const env: NodeJS.ProcessEnv = { LOG_LEVEL: 'warn', API_KEYS: '' };
    expect(applyEnvFile(env, file)).to.equal(true);
    const config = loadConfig(env);
    expect(config).to.include({ port: 4100, queuePrefix: 'from-file', logLevel: 'warn' });
    expect(config.apiKeys).to.deep.equal([]);
  });

  it('is optional: no file, nothing added', () => {
    const env: NodeJS.ProcessEnv = { PORT: '1' };
    expect(applyEnvFile(env, path.join(dir, 'missing.env'))).to.equal(false);
    expect(env).to.deep.equal({ PORT: '1' });
  });

  it('one that cannot be read is a configuration error naming it', () => {
    fs.mkdirSync(path.join(dir, '.env'));
    expect(() => applyEnvFile({}, path.join(dir, '.env')))
      .to.throw(ConfigError)
      .with.property('message')
      .that.matches(/cannot read .*\.env/);
  });

  it('.env.example copied as it is changes nothing', () => {
    const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
    const env: NodeJS.ProcessEnv = {};
    applyEnvFile(env, path.join(root, '.env.example'));
    expect(env).to.deep.equal({});
  });
});
