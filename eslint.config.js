// ESLint flat config (DESIGN.md style 15): typed typescript-eslint over every .ts file the project
// compiles (tsconfig.json), with no `any`, no non-null `!`, no floating or misused promises and no
// enums. Import rules between server/ folders are checked separately by hack/check-layers.ts.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    // dist/: compiler output; proto/gen/: written by hack/gen-proto.ts (tsc still checks it).
    ignores: ['dist/', 'node_modules/', 'proto/gen/', '**/*.cairn/', '**/*.etcd/', '.localkube/'],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test runs top-level tests and suites itself; their returned promises need no handling.
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'No enums (DESIGN.md style 15): use a union of literals or an `as const` object.' },
      ],
    },
  },
  {
    // Plain JS (this file): no type information, so no typed rules.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
