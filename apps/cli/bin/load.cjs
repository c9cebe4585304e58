'use strict';
/**
 * Loads a command's bundle (dist/NAME.cjs) with a V8 code cache of its own.
 *
 * Node's compile cache (module.enableCompileCache()) keeps the code V8 made when it compiled a file, before it ran:
 * the top level only. Every function of the start path is then compiled anew on every start (a few milliseconds
 * for nspawn). Here the cache is made from the script after it ran (vm.Script#createCachedData()), so it holds the
 * bytecode of every function the run used, and the next start compiles almost nothing.
 *
 * The cache is code that runs as root: it is only read from a directory and a file that belong to this user and
 * that nobody else can write (/var/cache/nspawn/code for root, else $XDG_CACHE_HOME/nspawn/code or
 * ~/.cache/nspawn/code), never from /tmp. $NSPAWN_CODE_CACHE names another directory (the same checks apply), or
 * turns it off with 0. A cache V8 refuses (another Node, other flags) is made again.
 *
 * When it is written: by save() (the command says when its start path has run: nspawn before its exec of the
 * helper), or at exit when there was none. A cache written at exit (say by --help) is replaced by the first save().
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const KIND_EXIT = 0;
const KIND_SAVED = 1;

function cacheDir(env) {
  const v = env.NSPAWN_CODE_CACHE;
  if (v === '0') return undefined;
  if (v) return path.resolve(v);
  const uid = process.geteuid();
  if (uid === 0) return '/var/cache/nspawn/code';
  const base = env.XDG_CACHE_HOME || (env.HOME ? path.join(env.HOME, '.cache') : undefined);
  return base ? path.join(base, 'nspawn', 'code') : undefined;
}

/** FNV-1a of S, 8 hex digits (node:crypto costs milliseconds to load) */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** stat S: this user's, and writable by nobody else */
const ours = (s) => s.uid === process.geteuid() && (s.mode & 0o022) === 0;

function readCache(file) {
  let fd;
  try {
    const dir = fs.lstatSync(path.dirname(file));
    if (!dir.isDirectory() || !ours(dir)) return undefined;
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || !ours(st) || st.size < 2) return undefined;
    return fs.readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeCache(file, kind, data) {
  try {
    const dir = path.dirname(file);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || !ours(st)) return;
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, Buffer.of(kind));
      fs.writeSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    // the caches of earlier builds of this command at this path (NAME@NODE-ARCH-FLAGS@PATHHASH-BUILD), for any Node
    // and flags; and any of this command not made again for 30 days (an installation that is gone: one in use is
    // at worst made again once a month)
    const [name, , build] = path.basename(file).split('@');
    const place = build.split('-')[0];
    const old = Date.now() - 30 * 24 * 3600 * 1000;
    for (const n of fs.readdirSync(dir)) {
      const [nm, , b] = n.split('@');
      if (nm !== name || b === undefined || n === path.basename(file) || n.endsWith('.tmp')) continue;
      const p = path.join(dir, n);
      if (b.split('-')[0] === place || fs.lstatSync(p).mtimeMs < old) fs.rmSync(p, { force: true });
    }
  } catch {
    // a cache is an optimisation: a read-only /var, a full disk or a race with another start changes nothing
  }
}

/** the bundles this process loaded through this file: [name, save] in load order (the first is the command's) */
const loaded = [];
/** what the command's bundle shares with the parts it loads lazily (registered by the bundle: scripts/bundle.mjs) */
const SHARED = Symbol.for('nspawn.shared');
const PART = /^\.\/(nspawn-[a-z0-9-]+)\.cjs$/;

/**
 * Runs dist/NAME.cjs as Node would run it with require(), from the code cache when there is a usable one, with
 * REQ as its require(). Returns its exports and save(): writes the cache now, unless the one loaded was itself saved
 * (and accepted).
 */
function run(name, env, req) {
  const file = path.join(__dirname, '..', 'dist', `${name}.cjs`);
  const fd = fs.openSync(file, 'r');
  let source;
  let st;
  try {
    st = fs.fstatSync(fd);
    source = fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
  const dir = cacheDir(env);
  // the bundle's identity: path, size, mtime and inode (not a hash of its content: reading it again would cost what
  // the cache saves), and this Node's
  // (V8 refuses a cache made under other flags: one per set of Node options)
  const flags = process.execArgv.length ? `-${hash(process.execArgv.join(' '))}` : '';
  // (two installations of the command, each with its own: the bundle's path is part of the build's name)
  const cacheFile = dir && path.join(dir, `${name}@${process.version}-${process.arch}${flags}@${hash(file)}-${st.size}-${Math.trunc(st.mtimeMs)}-${st.ino}`);
  const cached = cacheFile ? readCache(cacheFile) : undefined;
  // one line, as Node wraps a CommonJS module: line numbers stay those of the file
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, {
    filename: file,
    cachedData: cached?.subarray(1),
  });
  const loadedKind = cached && !script.cachedDataRejected ? cached[0] : undefined;
  let written = false;
  const write = (kind) => {
    if (written || !cacheFile) return;
    written = true;
    writeCache(cacheFile, kind, script.createCachedData());
  };
  // FORCE: also when the cache loaded was saved (it may lack what this run compiled)
  const save = (force = false) => {
    if (force || loadedKind !== KIND_SAVED) write(KIND_SAVED);
  };
  process.once('exit', () => {
    if (loadedKind === undefined) write(KIND_EXIT);
  });
  loaded.push([name, save, loadedKind === KIND_SAVED]);
  const mod = { exports: {}, filename: file, id: file };
  script.runInThisContext()(mod.exports, req(file), mod, file, path.dirname(file));
  return { exports: mod.exports, save };
}

/**
 * The require() a bundle gets: Node's, except for the parts it loads lazily, dist/nspawn-*.cjs (@nspawn/net,
 * @nspawn/image, @nspawn/machined, execa, the start's optional pieces...), which are run here too, each with a code
 * cache of its own (Node's require() would compile them at every start), once; and for `nspawn-shared:ID`, what the
 * command's bundle shares with them (the one instance of @nspawn/runtime and the like).
 */
function requireFor(env) {
  const parts = new Map();
  const make = (file) => {
    const plain = createRequire(file);
    const req = (id) => {
      const part = PART.exec(id);
      if (part && path.dirname(file) === path.join(__dirname, '..', 'dist')) {
        let m = parts.get(part[1]);
        if (!m) {
          m = run(part[1], env, make).exports;
          parts.set(part[1], m);
        }
        return m;
      }
      if (id.startsWith('nspawn-shared:')) {
        const shared = globalThis[SHARED]?.[id.slice(14)];
        if (!shared) throw new Error(`${path.basename(file)}: ${id} is not shared by the command's bundle`);
        return shared;
      }
      return plain(id);
    };
    req.resolve = plain.resolve;
    req.cache = plain.cache;
    return req;
  };
  return make;
}

/**
 * Runs dist/NAME.cjs (see run()) and the parts it requires lazily. Returns save(): writes the cache of every bundle
 * run so far (the command's and the parts'), unless the one each loaded was itself saved. A run that loaded a part
 * without a saved cache took a path the command's saved cache may not hold (the first -i start after plain ones: the
 * command's own image code): the command's cache is saved again then, with what this run compiled, so that the next
 * such start compiles nothing either.
 */
function load(name, env = process.env) {
  const save = () => {
    const newPath = loaded.slice(1).some(([, , hadSaved]) => !hadSaved);
    for (const [i, [, s]] of loaded.entries()) s(i === 0 && newPath);
  };
  globalThis[Symbol.for('nspawn.saveCodeCache')] = save;
  run(name, env, requireFor(env));
  return save;
}

/** The names of the bundles run so far by load(), the command's first. */
const loadedBundles = () => loaded.map(([n]) => n);

module.exports = { load, cacheDir, loadedBundles };
