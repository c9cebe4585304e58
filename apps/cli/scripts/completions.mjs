#!/usr/bin/env node
// Shell completions for nspawn and nspawnctl, bash and zsh, into dist/completions/. nspawn's options come
// from the parser's own table (@nspawn/settings COMMAND_LINE_OPTIONS), their descriptions and value names
// from --help (src/help.ts), and value lists from `--OPTION=help`, so the completions follow the parser.
// Machine names: `nspawnctl list --no-legend` when nspawnctl runs, and the running containers' cgroup scopes
// (machine.slice/machine-NAME.scope) when there is no daemon; image names: /var/lib/machines
// ($NSPAWN_MACHINES_DIR overrides it).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(here, 'package.json'));
const settings = await import(pathToFileURL(require.resolve('@nspawn/settings')).href);
const { HELP } = await import(pathToFileURL(join(here, 'src/help.ts')).href);

/** nspawnctl's verbs (machinectl's, issue #9): name -> what its arguments are. */
export const NSPAWNCTL_VERBS = {
  list: 'none',
  status: 'machines',
  show: 'machines',
  start: 'images',
  login: 'machines',
  shell: 'machines',
  poweroff: 'machines',
  reboot: 'machines',
  terminate: 'machines',
  kill: 'machines',
  enable: 'images',
  disable: 'images',
  'copy-to': 'machine-files',
  'copy-from': 'machine-files',
  bind: 'machine-files',
  'list-images': 'none',
  'image-status': 'images',
  'show-image': 'images',
  clone: 'images',
  rename: 'images',
  'read-only': 'images',
  remove: 'images',
  'set-limit': 'images',
  clean: 'none',
  'pull-tar': 'files',
  'import-tar': 'files',
  'export-tar': 'images',
  'pull-raw': 'none',
  'import-raw': 'files',
  'import-fs': 'files',
  'export-raw': 'images',
  'list-transfers': 'none',
  'cancel-transfer': 'none',
  logs: 'machines',
  top: 'none',
  web: 'none',
  'install-units': 'none',
};
/**
 * nspawnctl's options: [long, short, value list ('' = no value, undefined = free text), description], the ones of
 * its parser (src/ctl-args.ts CTL_OPTIONS, in its order; test/ctl-args.test.ts checks that they are the same).
 */
export const NSPAWNCTL_OPTIONS = [
  ['help', 'h', '', 'Show this help'],
  ['version', '', '', 'Show package version'],
  ['all', 'a', '', 'With clean: remove all unused images; with list-images: show hidden ones'],
  ['no-pager', '', '', 'Do not pipe output into a pager'],
  ['no-legend', '', '', 'Do not show the headers and footers'],
  ['kill-whom', '', 'leader all', 'Whom to send signal to'],
  ['signal', 's', 'SIGTERM SIGKILL SIGINT SIGHUP SIGRTMIN+3 SIGRTMIN+4 SIGRTMIN+5', 'Which signal to send'],
  ['read-only', '', '', 'Create read-only bind mount, clone or imported image'],
  ['mkdir', '', '', 'Create directory before bind mounting, if missing'],
  ['quiet', 'q', '', 'Suppress output'],
  ['lines', 'n', undefined, 'Console lines to show (status)'],
  ['output', 'o', 'json json-pretty short', 'Change journal/status output mode'],
  ['no-ask-password', '', '', 'Do not ask for system passwords'],
  ['verify', '', 'no checksum signature yes', 'Verification mode for downloaded images'],
  ['force', '', '', 'Replace target file when copying, if necessary'],
  ['format', '', 'uncompressed xz gzip bzip2 zstd', 'Compression of exported images'],
  ['uid', '', 'USERS', 'Specify user ID to invoke shell as'],
  ['setenv', 'E', undefined, 'Add an environment variable for shell'],
  ['follow', 'f', '', 'Follow the logs'],
  ['root', '', undefined, 'Install the units under this directory (install-units)'],
];

/** what an option --help does not list (as 252's does not) is described as, for the completions */
const UNLISTED_DESCRIPTIONS = {
  'share-system': "Share the host's IPC, PID and UTS namespaces (deprecated)",
};

/** Options as completion data: { long, short, arg, desc, meta, values } from the parser, --help and --X=help. */
export function nspawnOptions() {
  const helpLines = new Map();
  for (const m of HELP.matchAll(/^ {2}(?:-(\w) |   )--([\w-]+)(?:\[?=([^\s\]]+)\]?)?\s*(.*)$/gm)) helpLines.set(m[2], { meta: m[3], desc: m[4] });
  const extraValues = {
    'link-journal': 'no auto guest host try-guest try-host',
    'private-users': 'no yes pick identity',
    settings: 'yes no trusted override',
    'network-interface': 'INTERFACES',
    'network-macvlan': 'INTERFACES',
    'network-ipvlan': 'INTERFACES',
    'network-bridge': 'INTERFACES',
    'network-zone': '',
    machine: 'MACHINES',
    directory: 'DIRS',
    template: 'DIRS',
    chdir: '',
    user: 'USERS',
    'bind-user': 'USERS',
    'load-credential': '',
    image: 'FILES',
  };
  // options the parser takes and the runtime refuses (not built yet) are not offered
  return settings.COMMAND_LINE_OPTIONS.filter((o) => !o.refused).map((o) => {
    const h = helpLines.get(o.long) ?? {};
    let values;
    if (o.arg !== 'none') {
      try {
        values = settings.parseCommandLine([`--${o.long}=help`]).listing?.join(' ');
      } catch {
        /* no list */
      }
      values ??= extraValues[o.long];
      if (values === undefined && h.meta === 'BOOLEAN') values = 'yes no';
      if (values === undefined && /PATH/.test(h.meta ?? '')) values = 'FILES';
    }
    return { long: o.long, short: o.short, arg: o.arg, desc: h.desc ?? UNLISTED_DESCRIPTIONS[o.long] ?? '', meta: h.meta ?? 'VALUE', values };
  });
}

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

const BASH_COMMON = String.raw`
__nspawn_machines() {
  {
    if command -v nspawnctl >/dev/null 2>&1; then
      nspawnctl list --no-legend 2>/dev/null | awk '{ print $1 }'
    fi
    # running containers, with or without the daemon: their cgroup scopes (unit-name escaped)
    local d f
    for d in /sys/fs/cgroup/machine.slice /sys/fs/cgroup/unified/machine.slice /sys/fs/cgroup/systemd/machine.slice; do
      [ -d "$d" ] || continue
      for f in "$d"/machine-*.scope; do
        [ -d "$f" ] || continue
        f=${"$"}{f##*/machine-}; f=${"$"}{f%.scope}
        printf '%b\n' "$f"
      done
    done
  } 2>/dev/null | sort -u
}
__nspawn_images() {
  local d=${"$"}{NSPAWN_MACHINES_DIR:-/var/lib/machines} f
  [ -d "$d" ] || return 0
  for f in "$d"/*; do
    [ -e "$f" ] || continue
    f=${"$"}{f##*/}; f=${"$"}{f%.raw}
    printf '%s\n' "$f"
  done
}
__nspawn_values() {
  # $1: a value list, or MACHINES, IMAGES, DIRS, FILES, USERS, INTERFACES; $2: the word so far
  case $1 in
    MACHINES) COMPREPLY=( $(compgen -W "$(__nspawn_machines) $(__nspawn_images)" -- "$2") ) ;;
    IMAGES) COMPREPLY=( $(compgen -W "$(__nspawn_images)" -- "$2") ) ;;
    DIRS) COMPREPLY=( $(compgen -d -- "$2") ) ;;
    FILES) COMPREPLY=( $(compgen -f -- "$2") ) ;;
    USERS) COMPREPLY=( $(compgen -u -- "$2") ) ;;
    INTERFACES) COMPREPLY=( $(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$2") ) ;;
    *) COMPREPLY=( $(compgen -W "$1" -- "$2") ) ;;
  esac
}
`;

export function bashCompletion() {
  const opts = nspawnOptions();
  const longs = opts.filter((o) => o.long.length > 1);
  const words = [
    ...longs.map((o) => (o.arg === 'required' ? `--${o.long}=` : `--${o.long}`)),
    ...opts.filter((o) => o.short).map((o) => `-${o.short}`),
  ];
  const cases = opts
    .filter((o) => o.arg !== 'none' && o.values !== undefined && o.values !== '')
    .map((o) => `    ${[`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])].join('|')}) echo ${shq(o.values)} ;;`)
    .join('\n');
  const takesArg = opts
    .filter((o) => o.arg === 'required')
    .flatMap((o) => [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])])
    .join('|');
  const ctlWords = [...NSPAWNCTL_OPTIONS.map(([l, s, v]) => [v === '' ? `--${l}` : `--${l}=`, ...(s ? [`-${s}`] : [])]).flat()];
  const ctlValues = NSPAWNCTL_OPTIONS.filter(([, , v]) => v)
    .map(([l, s, v]) => `    ${[`--${l}`, ...(s ? [`-${s}`] : [])].join('|')}) echo ${shq(v)} ;;`)
    .join('\n');
  const ctlVerbArgs = Object.entries(NSPAWNCTL_VERBS)
    .filter(([, a]) => a !== 'none')
    .map(([v, a]) => `      ${v}) __nspawn_values ${a === 'machines' || a === 'machine-files' ? 'MACHINES' : a === 'images' ? 'IMAGES' : 'FILES'} "$cur" ;;`)
    .join('\n');
  return `# bash completion for nspawn and nspawnctl -*- shell-script -*-
# Generated by apps/cli/scripts/completions.mjs from the option parser; do not edit.
# Install: copy to /usr/share/bash-completion/completions/nspawn (and a link named nspawnctl), or source it.
${BASH_COMMON}
__nspawn_option_values() {
  case $1 in
${cases}
  esac
}

_nspawn() {
  local cur=${"$"}{COMP_WORDS[COMP_CWORD]} prev=${"$"}{COMP_WORDS[COMP_CWORD-1]} opt= pre= i w
  COMPREPLY=()
  # options stop at the first non-option word (the command): after it, files
  for (( i = 1; i < COMP_CWORD; i++ )); do
    w=${"$"}{COMP_WORDS[i]}
    case $w in
      --) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;
      =) continue ;;
      -*) case $w in ${takesArg}) [[ ${"$"}{COMP_WORDS[i+1]} == = ]] && (( i++ )); (( i++ )) ;; esac ;;
      *) [[ ${"$"}{COMP_WORDS[i-1]} == = ]] && continue
         COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;
    esac
  done
  # --option=value (COMP_WORDBREAKS splits at '=': "--opt" "=" "value")
  if [[ $cur == = ]]; then opt=$prev; cur=
  elif [[ $prev == = ]]; then opt=${"$"}{COMP_WORDS[COMP_CWORD-2]}
  elif [[ $cur == --*=* ]]; then opt=${"$"}{cur%%=*}; cur=${"$"}{cur#*=}; pre="$opt="
  elif [[ $prev == -* && $prev != *=* ]]; then
    case $prev in ${takesArg}) opt=$prev ;; esac
  fi
  if [[ -n $opt ]]; then
    local vals; vals=$(__nspawn_option_values "$opt")
    [[ -n $vals ]] && __nspawn_values "$vals" "$cur"
    [[ -n $pre ]] && COMPREPLY=( "${"$"}{COMPREPLY[@]/#/$pre}" )
    return 0
  fi
  if [[ $cur == -* || -z $cur ]]; then
    COMPREPLY=( $(compgen -W ${shq(words.join(' '))} -- "$cur") )
    [[ ${"$"}{#COMPREPLY[@]} == 1 && ${"$"}{COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    return 0
  fi
  COMPREPLY=( $(compgen -f -- "$cur") )
}

__nspawnctl_option_values() {
  case $1 in
${ctlValues}
  esac
}

_nspawnctl() {
  local cur=${"$"}{COMP_WORDS[COMP_CWORD]} prev=${"$"}{COMP_WORDS[COMP_CWORD-1]} verb= i w vals
  COMPREPLY=()
  if [[ $cur == = ]]; then prev=${"$"}{COMP_WORDS[COMP_CWORD-1]}; cur=
  elif [[ $prev == = ]]; then prev=${"$"}{COMP_WORDS[COMP_CWORD-2]}
  fi
  vals=$(__nspawnctl_option_values "$prev")
  if [[ -n $vals ]]; then __nspawn_values "$vals" "$cur"; return 0; fi
  for (( i = 1; i < COMP_CWORD; i++ )); do
    w=${"$"}{COMP_WORDS[i]}
    case $w in
      -*|=) ;;
      *) [[ -n $(__nspawnctl_option_values "${"$"}{COMP_WORDS[i-1]}") || ${"$"}{COMP_WORDS[i-1]} == = ]] && continue
         verb=$w; break ;;
    esac
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=( $(compgen -W ${shq(ctlWords.join(' '))} -- "$cur") )
    return 0
  fi
  if [[ -z $verb ]]; then
    COMPREPLY=( $(compgen -W ${shq(Object.keys(NSPAWNCTL_VERBS).join(' '))} -- "$cur") )
    return 0
  fi
  case $verb in
${ctlVerbArgs}
  esac
}

complete -F _nspawn nspawn
complete -F _nspawnctl nspawnctl
`;
}

const zq = (s) => s.replace(/[[\]:'\\]/g, (c) => (c === "'" ? `'\\''` : `\\${c}`));

export function zshCompletion() {
  const action = (values) => {
    if (values === undefined || values === '') return '';
    if (values === 'MACHINES') return ':machine:__nspawn_zsh_machines';
    if (values === 'IMAGES') return ':image:__nspawn_zsh_images';
    if (values === 'DIRS') return ':directory:_files -/';
    if (values === 'FILES') return ':file:_files';
    if (values === 'USERS') return ':user:_users';
    if (values === 'INTERFACES') return ':interface:_net_interfaces';
    return `:value:(${values.split(' ').map(zq).join(' ')})`;
  };
  const specs = [];
  for (const o of nspawnOptions()) {
    const desc = zq(o.desc || o.long);
    const arg = o.arg === 'required' ? `${action(o.values) || ':value: '}` : o.arg === 'optional' ? `:${zq(o.meta.toLowerCase())}:${action(o.values).split(':').slice(2).join(':') || ' '}` : '';
    if (o.long.length > 1) specs.push(`'${o.arg === 'none' ? `--${o.long}` : o.arg === 'optional' ? `--${o.long}=-` : `--${o.long}=`}[${desc}]${arg}'`);
    if (o.short) specs.push(`'-${o.short}[${desc}]${arg.replace(/^:/, '+:').replace(/^\+/, '')}'`);
  }
  const ctlSpecs = NSPAWNCTL_OPTIONS.flatMap(([l, s, v, d]) => {
    const arg = v === '' ? '' : action(v) || ':value: ';
    return [`'--${l}${v === '' ? '' : '='}[${zq(d)}]${arg}'`, ...(s ? [`'-${s}[${zq(d)}]${arg}'`] : [])];
  });
  const verbs = Object.keys(NSPAWNCTL_VERBS).map((v) => `'${v}'`).join(' ');
  const verbArgs = Object.entries(NSPAWNCTL_VERBS)
    .filter(([, a]) => a !== 'none')
    .map(([v, a]) => `        ${v}) ${a === 'machines' || a === 'machine-files' ? '__nspawn_zsh_machines' : a === 'images' ? '__nspawn_zsh_images' : '_files'} ;;`)
    .join('\n');
  return `#compdef nspawn nspawnctl
# zsh completion for nspawn and nspawnctl. Generated by apps/cli/scripts/completions.mjs from the option
# parser; do not edit. Install: copy to a directory on $fpath as _nspawn (e.g. /usr/local/share/zsh/site-functions).

__nspawn_zsh_machines() {
  local -a names
  if (( $+commands[nspawnctl] )); then
    names+=( \${(f)"$(nspawnctl list --no-legend 2>/dev/null | awk '{ print $1 }')"} )
  fi
  local d f
  for d in /sys/fs/cgroup/machine.slice /sys/fs/cgroup/unified/machine.slice /sys/fs/cgroup/systemd/machine.slice; do
    [[ -d $d ]] || continue
    for f in $d/machine-*.scope(N/); do
      f=\${\${f:t}#machine-}; f=\${f%.scope}
      names+=( "\${(g::)f}" )
    done
  done
  names+=( \${(f)"$(__nspawn_zsh_image_names)"} )
  _wanted machines expl machine compadd -a - \${(u)names}
}
__nspawn_zsh_image_names() {
  local d=\${NSPAWN_MACHINES_DIR:-/var/lib/machines} f
  for f in $d/*(N); do f=\${f:t}; print -r -- \${f%.raw}; done
}
__nspawn_zsh_images() {
  local -a names; names=( \${(f)"$(__nspawn_zsh_image_names)"} )
  _wanted images expl image compadd -a names
}

_nspawn_cmd() {
  _arguments -s -S \\
    ${specs.join(' \\\n    ')} \\
    '*::command:_normal'
}

_nspawnctl_cmd() {
  local curcontext=$curcontext state line
  _arguments -s -S \\
    ${ctlSpecs.join(' \\\n    ')} \\
    '1:verb:(${verbs.replace(/'/g, '')})' \\
    '*::argument:->args'
  case $state in
    args)
      case $words[1] in
${verbArgs}
      esac ;;
  esac
}

case $service in
  nspawnctl) _nspawnctl_cmd "$@" ;;
  *) _nspawn_cmd "$@" ;;
esac
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(here, 'dist/completions');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'nspawn.bash'), bashCompletion());
  writeFileSync(join(out, '_nspawn'), zshCompletion());
}
