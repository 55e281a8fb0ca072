import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Packages talk to each other only through what each package.json `exports` and declares: a deep import works in the
// workspace (every file is on disk) and breaks for an installed package, or couples two packages to each other's layout.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCOPE = '@wafleet/';
const SOURCE_FILE = /\.[cm]?[jt]s$/;
const TEST_FILE = /\.test\.[cm]?[jt]s$/;

type Rule = 'non-public-entry' | 'unknown-package' | 'other-package-file' | 'undeclared-dependency';

interface Violation {
  file: string;
  line: number;
  specifier: string;
  rule: Rule;
  message: string;
}

interface BoundaryReport {
  files: string[];
  violations: Violation[];
}

interface WorkspacePackage {
  name: string;
  dir: string;
  isRoot: boolean;
  exports: unknown;
  dependencies: Set<string>;
  devDependencies: Set<string>;
}

interface Workspace {
  root: WorkspacePackage;
  byName: Map<string, WorkspacePackage>;
  /** Deepest directory first, so a file's owner is the first package whose directory contains it. */
  byDepth: WorkspacePackage[];
}

interface PackageJson {
  name?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** The `packages:` globs of pnpm-workspace.yaml; the file is flat enough that a YAML parser would only add a dependency. */
function workspaceGlobs(root: string): string[] {
  const yaml = readFileSync(path.join(root, 'pnpm-workspace.yaml'), 'utf8');
  const block = /^packages:\s*\n((?:[ \t]+-.*\n?)+)/m.exec(yaml)?.[1] ?? '';
  return [...block.matchAll(/^[ \t]+-[ \t]*['"]?([^'"#\s]+)['"]?/gm)].map((match) => match[1] ?? '');
}

/** Directories matching a glob whose segments are literal or use `*` within one segment (all pnpm-workspace.yaml uses). */
function expandGlob(root: string, glob: string): string[] {
  if (glob.startsWith('!') || glob.includes('**'))
    throw new Error(`pnpm-workspace.yaml: teach package-boundaries.test.ts the glob ${glob}`);
  let dirs = [root];
  for (const segment of glob.split('/').filter(Boolean)) {
    const pattern = new RegExp(`^${segment.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    dirs = dirs.flatMap((dir) =>
      segment.includes('*')
        ? readdirSync(dir, { withFileTypes: true })
            .filter((entry) => entry.isDirectory() && pattern.test(entry.name))
            .map((entry) => path.join(dir, entry.name))
        : [path.join(dir, segment)],
    );
  }
  return dirs;
}

function readPackageJson(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch (err) {
    // pnpm skips a matched directory without a package.json (packages/php is a Composer package).
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function toPackage(dir: string, json: PackageJson, isRoot: boolean): WorkspacePackage {
  const names = (...maps: (Record<string, string> | undefined)[]) => new Set(maps.flatMap((map) => Object.keys(map ?? {})));
  return {
    name: json.name ?? path.basename(dir),
    dir,
    isRoot,
    exports: json.exports,
    dependencies: names(json.dependencies, json.peerDependencies, json.optionalDependencies),
    devDependencies: names(json.devDependencies),
  };
}

function loadWorkspace(root: string): Workspace {
  const members = workspaceGlobs(root)
    .flatMap((glob) => expandGlob(root, glob))
    .flatMap((dir) => {
      const json = readPackageJson(dir);
      return json ? [toPackage(dir, json, false)] : [];
    });
  const rootPackage = toPackage(root, readPackageJson(root) ?? {}, true);
  return {
    root: rootPackage,
    byName: new Map(members.map((member) => [member.name, member])),
    byDepth: [...members].sort((a, b) => b.dir.length - a.dir.length),
  };
}

function ownerOf(workspace: Workspace, file: string): WorkspacePackage {
  return workspace.byDepth.find((member) => file === member.dir || file.startsWith(member.dir + path.sep)) ?? workspace.root;
}

/** Every source file below `dir`, leaving out installed and built code and dot directories (.git, caches). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      return entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.') ? [] : sourceFiles(full);
    }
    return entry.isFile() && SOURCE_FILE.test(entry.name) ? [full] : [];
  });
}

function stringArgument(node: ts.Node | undefined): ts.StringLiteralLike | undefined {
  return node && ts.isStringLiteralLike(node) ? node : undefined;
}

/** `import(…)`, `require(…)`, `require.resolve(…)` and `import.meta.resolve(…)` all name a module. */
function isModuleCall(callee: ts.Expression): boolean {
  const isRequire = (node: ts.Expression) => ts.isIdentifier(node) && node.text === 'require';
  if (callee.kind === ts.SyntaxKind.ImportKeyword || isRequire(callee)) return true;
  return (
    ts.isPropertyAccessExpression(callee) &&
    callee.name.text === 'resolve' &&
    (isRequire(callee.expression) || ts.isMetaProperty(callee.expression))
  );
}

function specifierOf(node: ts.Node): ts.StringLiteralLike | undefined {
  if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return stringArgument(node.moduleSpecifier);
  if (ts.isExternalModuleReference(node)) return stringArgument(node.expression);
  if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) return stringArgument(node.argument.literal);
  if (ts.isCallExpression(node) && isModuleCall(node.expression)) return stringArgument(node.arguments[0]);
  return undefined;
}

function moduleSpecifiers(file: string, text: string): { specifier: string; line: number }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const found: { specifier: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    const literal = specifierOf(node);
    if (literal) found.push({ specifier: literal.text, line: source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1 });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * Whether Node would let `subpath` through this `exports` field: exact keys, then `*` patterns (longest prefix wins),
 * and a `null` target closes a subpath. A package without `exports` offers only its main entry here, stricter than Node.
 */
function isExported(exportsField: unknown, subpath: string): boolean {
  const map = subpathMap(exportsField);
  if (subpath in map) return map[subpath] !== null;
  const pattern = Object.keys(map)
    .filter((key) => {
      const [prefix = '', suffix = ''] = key.split('*');
      return key.includes('*') && subpath.startsWith(prefix) && subpath.endsWith(suffix) && subpath.length >= key.length;
    })
    .sort((a, b) => b.indexOf('*') - a.indexOf('*'))[0];
  return pattern !== undefined && map[pattern] !== null;
}

/** `exports` as subpath keys: a string, an array or a conditions object is the main entry only. */
function subpathMap(exportsField: unknown): Record<string, unknown> {
  if (typeof exportsField === 'object' && exportsField !== null && !Array.isArray(exportsField)) {
    const map = exportsField as Record<string, unknown>;
    if (Object.keys(map).every((key) => key.startsWith('.'))) return map;
  }
  return { '.': exportsField ?? '.' };
}

function isTestFile(owner: WorkspacePackage, file: string): boolean {
  return TEST_FILE.test(file) || path.relative(owner.dir, file).split(path.sep)[0] === 'test';
}

function checkPackageSpecifier(workspace: Workspace, owner: WorkspacePackage, file: string, specifier: string): [Rule, string][] {
  const [, name = '', rest] = /^(@wafleet\/[^/]+)(?:\/(.*))?$/.exec(specifier) ?? [];
  const target = workspace.byName.get(name);
  if (!target) return [['unknown-package', `no workspace package is named ${name}`]];
  const problems: [Rule, string][] = [];
  const subpath = rest === undefined ? '.' : `./${rest}`;
  if (!isExported(target.exports, subpath)) {
    problems.push(['non-public-entry', `${subpath} is not in the exports of ${name}; import ${name} or one of its exports`]);
  }
  const mayUseDev = owner.isRoot || isTestFile(owner, file);
  // Test files are never shipped: they may also use the root's devDependencies (the private test harness lives
  // there, so no packed manifest names it).
  const declared =
    target === owner ||
    owner.dependencies.has(name) ||
    (mayUseDev && (owner.devDependencies.has(name) || workspace.root.devDependencies.has(name)));
  if (!declared) {
    const where = mayUseDev ? 'dependencies or devDependencies' : 'dependencies, peerDependencies or optionalDependencies';
    problems.push(['undeclared-dependency', `${owner.name} does not list ${name} in its ${where}`]);
  }
  return problems;
}

function checkRelativeSpecifier(workspace: Workspace, owner: WorkspacePackage, file: string, specifier: string): [Rule, string][] {
  const target = ownerOf(workspace, path.resolve(path.dirname(file), specifier));
  if (target === owner) return [];
  return [
    [
      'other-package-file',
      `reaches into ${target.name} (${path.relative(workspace.root.dir, target.dir) || '.'}); import its public entry`,
    ],
  ];
}

function checkSpecifier(workspace: Workspace, file: string, specifier: string): [Rule, string][] {
  const owner = ownerOf(workspace, file);
  if (specifier.startsWith(SCOPE)) return checkPackageSpecifier(workspace, owner, file, specifier);
  if (specifier.startsWith('.') || path.isAbsolute(specifier)) return checkRelativeSpecifier(workspace, owner, file, specifier);
  return [];
}

/** Every import, export, `import()` and `require()` in the workspace at `root` that crosses a package boundary wrongly. */
function findBoundaryViolations(root: string): BoundaryReport {
  const workspace = loadWorkspace(root);
  const files = sourceFiles(root);
  const relative = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const violations = files.flatMap((file) =>
    moduleSpecifiers(file, readFileSync(file, 'utf8')).flatMap(({ specifier, line }) =>
      checkSpecifier(workspace, file, specifier).map(([rule, message]) => ({ file: relative(file), line, specifier, rule, message })),
    ),
  );
  return { files: files.map(relative), violations };
}

function describeViolation(violation: Violation): string {
  return `${violation.file}:${violation.line} '${violation.specifier}' ${violation.rule}: ${violation.message}`;
}

function writeTree(root: string, files: Record<string, string | object>): void {
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), typeof content === 'string' ? content : JSON.stringify(content));
  }
}

describe('package boundaries', () => {
  let report: BoundaryReport;
  let fixture: string;

  beforeAll(() => {
    report = findBoundaryViolations(ROOT);
    fixture = mkdtempSync(path.join(os.tmpdir(), 'wafleet-boundaries-'));
  });

  afterAll(() => rmSync(fixture, { recursive: true, force: true }));

  it('no file imports a non-public entry, another package’s files or an undeclared workspace package', () => {
    expect(report.violations.map(describeViolation)).toEqual([]);
  });

  it('scans the sources of every workspace package, the tests and the scripts', () => {
    expect(report.files.length).toBeGreaterThan(100);
    const workspace = loadWorkspace(ROOT);
    const scanned = new Set(report.files.map((file) => ownerOf(workspace, path.join(ROOT, file)).name));
    expect([...workspace.byName.keys()].filter((name) => !scanned.has(name))).toEqual([]);
    expect(report.files).toEqual(expect.arrayContaining([expect.stringMatching(/^test\/.*\.test\.ts$/), 'scripts/test-all.mjs']));
    expect(report.files.filter((file) => /(^|\/)(node_modules|dist)\//.test(file))).toEqual([]);
  });

  it('reports every kind of violation in a fixture workspace, and only those', () => {
    writeTree(fixture, {
      'pnpm-workspace.yaml': "packages:\n  - packages/*\n  - 'examples/*'\n",
      'package.json': { name: 'fixture-root', private: true, devDependencies: { '@wafleet/a': 'workspace:*' } },
      'packages/a/package.json': {
        name: '@wafleet/a',
        exports: {
          '.': { types: './dist/index.d.ts', default: './dist/index.js' },
          './extra': './dist/extra.js',
          './lua/*': './lua/*',
          './lua/private/*': null,
        },
        devDependencies: { '@wafleet/b': 'workspace:*' },
      },
      'packages/a/src/a.test.ts': "import { b } from '@wafleet/b';\n",
      'packages/a/src/a.ts': "import { b } from '@wafleet/b';\n",
      'packages/a/test/helper.ts': "import { b } from '@wafleet/b';\n",
      'packages/a/src/b.cjs': "const b = require('../../b/src/index.js');\n",
      'packages/a/node_modules/x/index.js': "import '@wafleet/a/src/a.js';\n",
      'packages/a/dist/index.js': "import '../../b/src/index.js';\n",
      'packages/b/package.json': { name: '@wafleet/b', exports: './dist/index.js', dependencies: { '@wafleet/a': 'workspace:*' } },
      'packages/b/src/index.ts': [
        "import { a } from '@wafleet/a';",
        "import { extra } from '@wafleet/a/extra';",
        "import '@wafleet/a/lua/x.lua';",
        "import { local } from './local.js';",
        "import { deep } from '@wafleet/a/src/deep.js';",
        "export * from '@wafleet/a/dist/index.js';",
        "export type T = import('@wafleet/a/registry').T;",
        "const lazy = () => import('@wafleet/a/lua/private/k.lua');",
        "import { sibling } from '../../a/src/a.js';",
        "import '@wafleet/c';",
        "import '@wafleet/nope';",
        "import '../../a';",
      ].join('\n'),
      'packages/c/package.json': { name: '@wafleet/c' },
      'packages/docs/README.md': 'a matched directory without package.json is no workspace package',
      'examples/e/package.json': { name: 'example-e', private: true, dependencies: { '@wafleet/b': 'workspace:*' } },
      'examples/e/main.mjs': "import '@wafleet/a';\nawait import(`@wafleet/b`);\n",
      'test/t.test.ts': "import '@wafleet/c';\nimport { a } from '../packages/a/src/a.js';\n",
    });

    const found = findBoundaryViolations(fixture);

    expect(found.violations.map((v) => `${v.file}:${v.line} ${v.rule} ${v.specifier}`).sort()).toEqual([
      'examples/e/main.mjs:1 undeclared-dependency @wafleet/a',
      'packages/a/src/a.ts:1 undeclared-dependency @wafleet/b',
      'packages/a/src/b.cjs:1 other-package-file ../../b/src/index.js',
      'packages/b/src/index.ts:10 undeclared-dependency @wafleet/c',
      'packages/b/src/index.ts:11 unknown-package @wafleet/nope',
      'packages/b/src/index.ts:12 other-package-file ../../a',
      'packages/b/src/index.ts:5 non-public-entry @wafleet/a/src/deep.js',
      'packages/b/src/index.ts:6 non-public-entry @wafleet/a/dist/index.js',
      'packages/b/src/index.ts:7 non-public-entry @wafleet/a/registry',
      'packages/b/src/index.ts:8 non-public-entry @wafleet/a/lua/private/k.lua',
      'packages/b/src/index.ts:9 other-package-file ../../a/src/a.js',
      'test/t.test.ts:1 undeclared-dependency @wafleet/c',
      'test/t.test.ts:2 other-package-file ../packages/a/src/a.js',
    ]);
    expect(found.files).toHaveLength(7);
  });
});
