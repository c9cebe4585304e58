// The README example convention (CONTRIBUTING.md, "README examples"):
//   - the example is the first fenced block whose info string has the word `example` (```ts example);
//     without one, the first ```ts / ```js / ```mjs block;
//   - an optional ```sh example-setup block is run first (bash -e, in the fresh project, $REPO = the
//     workspace root) for what the example needs on the machine (an OS tree, a btrfs file, ...);
//   - the example runs as a file of its own with plain `node` (TypeScript by Node's type stripping), with
//     only the package installed from its tarball; it passes when it exits 0.

/** Fenced code blocks of a markdown text: { info: ['ts', 'example'], code } in order. */
export function fencedBlocks(md) {
  const out = [];
  const re = /^(```+|~~~+)[ \t]*([^\n]*)\n([\s\S]*?)^\1[ \t]*$/gm;
  for (const m of md.matchAll(re)) out.push({ info: m[2].trim().split(/\s+/).filter(Boolean), code: m[3] });
  return out;
}

const LANGS = { ts: 'ts', typescript: 'ts', js: 'mjs', javascript: 'mjs', mjs: 'mjs' };

/** The README's example and setup: { lang: 'ts'|'mjs', code, setup? } or undefined when it has none. */
export function readmeExample(md) {
  const blocks = fencedBlocks(md);
  const runnable = blocks.filter((b) => LANGS[b.info[0]]);
  const ex = runnable.find((b) => b.info.includes('example')) ?? runnable[0];
  if (!ex) return undefined;
  const setup = blocks.find((b) => b.info.includes('example-setup'));
  return { lang: LANGS[ex.info[0]], code: ex.code, ...(setup ? { setup: setup.code } : {}) };
}
