import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.generated.ts', '.wafleet-tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: Object.fromEntries(['process', 'console', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'performance', 'Buffer'].map((g) => [g, 'readonly'])) },
    rules: {
      // Library code logs through the injected logger only.
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Flags deep imports in the editor; test/package-boundaries.test.ts checks every specifier against the exports maps.
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: '@wafleet/core/registry', message: '@wafleet/core/registry is gone: registry keys, Lua scripts, ids and errors are public in @wafleet/protocol.' }],
          patterns: [
            {
              group: ['@wafleet/*/src', '@wafleet/*/src/**', '@wafleet/*/dist', '@wafleet/*/dist/**'],
              message: "Import a package's public entry (@wafleet/<name>, or a subpath its package.json exports, such as @wafleet/core/express).",
            },
          ],
        },
      ],
    },
  },
  {
    // The legacy example is a CommonJS service, as such services are.
    files: ['examples/legacy-service/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', fetch: 'readonly', AbortSignal: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The CommonJS consumer fixtures and the packages' CommonJS entry points exist to use require().
    files: ['test/fixtures/cjs-consumer/**', 'test/fixtures/pack-install/**', 'packages/*/*.cjs', 'deploy/**/*.cjs'],
    languageOptions: { globals: { require: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.test.ts', 'test/**', 'examples/**', 'bench/**', '**/scripts/**', 'packages/test-utils/**'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
