import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CategoriesDir {
  dir: string;
  /** writes a file under the directory and returns its path */
  write(name: string, text: string): string;
  remove(): void;
}

/** A temporary directory for a categories file and the processors it names. */
export function categoriesDir(): CategoriesDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'categories-'));
  return {
    dir,
    write(name, text) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      return file;
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
