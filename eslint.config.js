import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'data/', 'bench/tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'describe', property: 'only', message: '.only would silence the rest of the suite' },
        { object: 'it', property: 'only', message: '.only would silence the rest of the suite' },
        { object: 'context', property: 'only', message: '.only would silence the rest of the suite' },
      ],
    },
  },
  {
    // the examples are plain Node scripts a newcomer runs as they are
    files: ['examples/**/*.js'],
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly' } },
  },
  {
    // chai's property assertions (`.to.be.true`) are expressions by design
    files: ['test/**'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
  {
    // configuration is read in one place (shared/config.ts)
    files: ['api/**', 'worker/**', 'bin/**', 'shared/**'],
    ignores: ['shared/config.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'read configuration through shared/config.ts' },
      ],
    },
  },
);
