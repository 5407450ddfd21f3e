import bunyan from 'bunyan';
import type { Config } from './config.js';

export type Logger = bunyan;

export function createLogger(name: string, level: Config['logLevel']): Logger {
  return bunyan.createLogger({
    name,
    level,
    serializers: { err: bunyan.stdSerializers.err },
  });
}
