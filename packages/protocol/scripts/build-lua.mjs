// Compiles lua/*.lua (with `--@include name` lines resolved from lua/includes/) into TypeScript, so nothing reads
// .lua files at run time. Script file names are `<name>-<numberOfKeys>.lua`. Each script's header is the contract
// its typed caller is generated from:
//   KEYS[n] <key>       a registry key (RegistryKeys field, kebab-case) or, for a script outside the registry, a name
//   ARGV[n] <argName>   camelCase; `events` is filled from the registry's pub/sub channel
//   Reply: {<code> <NAME>[, field[:number|'a'|'b']]...[, ...rest]}   one line per reply, codes from includes/common.lua
// The reply codes themselves are read from includes/common.lua (`local NAME = n`), the one place they are defined.
// Writes src/scripts.generated.ts and src/reply-codes.generated.ts. With `--check`, writes nothing and exits 1
// when a committed file differs from what it would write. The PHP kit's files are written by build-php.mjs.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGenerated } from './generated-files.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const luaDir = join(root, 'lua');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function resolveIncludes(source, seen = new Set()) {
  return source.replace(/^--@include (\S+)\s*$/gm, (_, name) => {
    if (seen.has(name)) return '';
    seen.add(name);
    return resolveIncludes(readFileSync(join(luaDir, 'includes', `${name}.lua`), 'utf8'), seen);
  });
}

const camel = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
const pascal = (name) => camel(name).replace(/^[a-z]/, (c) => c.toUpperCase());

// Reply codes: `local NAME = n   -- meaning` lines of includes/common.lua.
const codes = [...readFileSync(join(luaDir, 'includes', 'common.lua'), 'utf8').matchAll(/^local ([A-Z_]+) = (-?\d+)\s*(?:--\s*(.*))?$/gm)].map(
  ([, name, value, meaning]) => ({ name, value: Number(value), meaning: meaning ?? '' }),
);
if (codes.length === 0) throw new Error('lua/includes/common.lua defines no reply codes (`local NAME = n`)');

function parseHeader(file, source) {
  const header = /^--\[\[\n([\s\S]*?)\n\]\]/.exec(source)?.[1];
  if (!header) throw new Error(`${file}: no --[[ ... ]] header`);
  const summary = header.split('\n\n')[0].replace(/\s+/g, ' ').trim();
  const keys = [...header.matchAll(/^\s*KEYS\[(\d+)\] ([a-z][a-z-]*)/gm)].map(([, n, name], i) => {
    if (Number(n) !== i + 1) throw new Error(`${file}: KEYS[${n}] out of order`);
    return camel(name);
  });
  const args = [...header.matchAll(/^\s*ARGV\[(\d+)\] ([a-z][A-Za-z]*)\b/gm)].map(([, n, name], i) => {
    if (Number(n) !== i + 1) throw new Error(`${file}: ARGV[${n}] out of order`);
    return name;
  });
  const replies = [...header.matchAll(/^\s*(?:Reply: )?\{(-?\d+) ([A-Z_]+)((?:, [^,}]+)*)\}/gm)].map(([, value, name, rest]) => {
    const code = codes.find((c) => c.name === name);
    if (!code || code.value !== Number(value)) throw new Error(`${file}: reply ${value} ${name} is not a code of includes/common.lua`);
    const fields = rest
      .split(', ')
      .slice(1)
      .map((spec) => {
        const m = /^(\.\.\.)?([a-z][A-Za-z]*)(?::(number|'[^']*'(?:\|'[^']*')*))?$/.exec(spec);
        if (!m) throw new Error(`${file}: reply field "${spec}" is not name, name:number, name:'a'|'b' or ...name`);
        return { rest: Boolean(m[1]), name: m[2], type: m[3] ?? 'string' };
      });
    if (fields.slice(0, -1).some((f) => f.rest)) throw new Error(`${file}: only the last reply field may be ...rest`);
    return { code, fields };
  });
  if (replies.length === 0) throw new Error(`${file}: the header lists no Reply`);
  return { summary, keys, args, replies };
}

const compiled = readdirSync(luaDir)
  .filter((f) => f.endsWith('.lua'))
  .sort()
  .map((file) => {
    const match = /^([a-z-]+)-(\d+)\.lua$/.exec(file);
    if (!match) throw new Error(`Lua script file names must be <name>-<numberOfKeys>.lua, got ${file}`);
    const [, name, keys] = match;
    const source = readFileSync(join(luaDir, file), 'utf8');
    const header = parseHeader(file, source);
    if (header.keys.length !== Number(keys)) throw new Error(`${file}: the header lists ${header.keys.length} KEYS, the name says ${keys}`);
    // The version comment changes the SHA per release, so two versions sharing a Redis never mix scripts.
    const lua = `-- wafleet ${version} ${name}\n${resolveIncludes(source)}`;
    const sha = createHash('sha1').update(lua).digest('hex');
    return { name, camel: camel(name), pascal: pascal(name), keys: Number(keys), sha, lua, header };
  });

const tsType = (f) => (f.rest ? 'string[]' : f.type === 'string' ? 'string' : f.type === 'number' ? 'number' : f.type.replace(/\|/g, ' | '));
const KEY_FIELDS = ['instances', 'instanceInfo', 'owned', 'sessions', 'pending', 'meta', 'data', 'dataUploads', 'breaker', 'breakerStarts', 'events'];

function caller(s) {
  const { keys, args, replies, summary } = s.header;
  const registryKeys = [...keys, ...(args.includes('events') ? ['events'] : [])].filter((k) => KEY_FIELDS.includes(k));
  const ownKeys = keys.filter((k) => !KEY_FIELDS.includes(k));
  const keysType = [
    ...(registryKeys.length ? [`Pick<RegistryKeys, ${registryKeys.map((k) => `'${k}'`).join(' | ')}>`] : []),
    ...(ownKeys.length ? [`{ readonly ${ownKeys.map((k) => `${k}: string`).join('; readonly ')} }`] : []),
  ];
  const callArgs = args.filter((a) => a !== 'events');
  const replyType = replies
    .map(({ code, fields }) => `  | { readonly code: '${code.name}'${fields.map((f) => `; readonly ${f.name}: ${tsType(f)}`).join('')} }`)
    .join('\n');
  const shapes = replies
    .map(({ code, fields }) => {
      const plain = fields.filter((f) => !f.rest).map((f) => `['${f.name}', '${f.type === 'number' ? 'n' : 's'}']`);
      const rest = fields.find((f) => f.rest);
      return `  [${code.value}]: { name: '${code.name}', fields: [${plain.join(', ')}]${rest ? `, rest: '${rest.name}'` : ''} },`;
    })
    .join('\n');
  const params = [
    'redis: RedisLike',
    `keys: ${keysType.join(' & ') || 'Record<string, never>'}`,
    ...(callArgs.length ? [`args: ${s.pascal}Args`] : []),
  ];
  return `
/** Arguments of the ${s.name} script, as its header lists them. */
${callArgs.length ? `export type ${s.pascal}Args = { ${callArgs.map((a) => `readonly ${a}: string | number`).join('; ')} };\n` : ''}/** Replies of the ${s.name} script. */
export type ${s.pascal}Reply =
${replyType};
const ${s.camel}Shapes: ReplyShapes = {
${shapes}
};
/** ${summary} */
export async function ${s.camel}(${params.join(', ')}): Promise<${s.pascal}Reply> {
  const raw = await runScript(redis, scripts.${s.camel}, [${keys.map((k) => `keys.${k}`).join(', ')}], [${args.map((a) => (a === 'events' ? 'keys.events' : `args.${a}`)).join(', ')}]);
  return parseReply<${s.pascal}Reply>('${s.name}', raw, ${s.camel}Shapes);
}
`;
}

const generated = {};
generated['scripts.generated.ts'] = `// Generated by scripts/build-lua.mjs from lua/*.lua. Do not edit.
import type { RegistryKeys } from './keys.js';
import { runScript, type RedisLike } from './redis.js';
import { parseReply, type ReplyShapes } from './reply-codes.js';

/** The registry's Lua scripts, keyed by name. */
export const scripts = {
${compiled
  .map(
    ({ name, camel: c, keys, sha, lua }) =>
      `  ${c}: { name: ${JSON.stringify(name)}, numberOfKeys: ${keys}, sha: ${JSON.stringify(sha)}, lua: ${JSON.stringify(lua)} },`,
  )
  .join('\n')}
} as const;
${compiled.map(caller).join('')}`;

generated['reply-codes.generated.ts'] = `// Generated by scripts/build-lua.mjs from lua/includes/common.lua. Do not edit.
/** Reply codes of the Lua scripts: the first element of every reply. */
export const ReplyCode = Object.freeze({
${codes.map((c) => `  /** ${c.meaning || c.name} */\n  ${c.name}: ${c.value},`).join('\n')}
});
`;

writeGenerated(generated, {
  dir: join(root, 'src'),
  label: 'packages/protocol/src',
  rerun: 'run node packages/protocol/scripts/build-lua.mjs',
});
