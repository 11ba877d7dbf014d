// typescript-eslint's recommended rules, with type information, over the library and the tests.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'runs/',
      'native/build/',
      'jupyter/',
      'notebooks/',
      'web/dist/',
      'jupyterlab/build/',
    ],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() returns a promise the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Shapes and lists in messages read fine as "1,2,3".
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowArray: true, allowNumber: true, allowBoolean: true, allowNullish: true },
      ],
      // Datasets, transforms and savers implement async interfaces whose some implementations never wait.
      '@typescript-eslint/require-await': 'off',
      // Optional packages (webgpu, tfjs-node-gpu) and the native addons load on demand, only when a
      // backend asks for them; import() would make every caller async.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Each folder's index.ts lists its public API by name, so a reader sees it there and a new export is a choice.
    files: ['lib/**/*.ts'],
    ignores: ['lib/index.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ExportAllDeclaration',
          message: "List the names: each folder's index.ts spells out its public API, so no `export *`.",
        },
      ],
    },
  },
  {
    // Tests read the JSON files the CLI writes (metrics, metadata, notebooks) without declaring their types.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
      },
    },
  },
  {
    // The offline JupyterLab's entry point is an ES module bundled by webpack for the browser.
    files: ['jupyterlab/index.js'],
    languageOptions: { sourceType: 'module', globals: { window: 'readonly', document: 'readonly' } },
  },
);
