// The only skipped tests a run may have (scripts/test-summary.mjs fails the run on any other skip, and on a todo).
// Each entry names one test (package, file, describe titles and title joined with " > ") and the reason it may
// not run here, and `proves()` checks that reason on this machine when the summary is made: the skip is allowed
// only when the check shows it (a kernel driver that is really missing), never because the test said so.
// `proves()` returns { ok, detail }: ok true when the machine shows the reason, detail what it saw.
// Add an entry only for something the machine lacks and the project cannot install (a kernel driver), never for
// a package setup.sh installs or for "needs root".
import { execa } from 'execa';
import { kernelRunsI386 } from './kernel-facts.mjs';

/**
 * Does this kernel refuse a link of KIND? Tried in a network namespace of its own (unshare -n), on a veth parent
 * (as the tests do: a kernel may lack the dummy driver too), so nothing on the host is touched and nothing is
 * left: the namespace goes with the process. ip's exit status 2 and "Unknown device type" say the driver is
 * missing; anything else (the parent not made, unshare missing) proves nothing.
 */
async function kernelLacksLink(kind) {
  const r = await execa('unshare', ['-n', 'sh', '-c', `ip link add st-probe0 type veth peer name st-probe1 || exit 99; ip link add link st-probe0 name st-probe2 type ${kind}`], {
    reject: false,
    all: true,
    stdin: 'ignore',
  });
  const said = (r.all || r.shortMessage || '').trim();
  if (r.exitCode === 0) return { ok: false, detail: `this kernel makes ${kind} links (ip link add ... type ${kind} worked)` };
  // (the parent must have been made: otherwise the check itself failed, which proves nothing)
  if (r.exitCode !== 2 || !/^Error: Unknown device type\.$/m.test(said))
    return { ok: false, detail: `the check could not run: ${said}` };
  return { ok: true, detail: `ip link add ... type ${kind}: ${said.split('\n').pop()}` };
}

export const ALLOWED_SKIPS = [
  {
    package: '@nspawn/net',
    file: 'test/links.test.ts',
    test: 'macvlan, ipvlan, moved interfaces > makes iv- links on a dummy parent inside the namespace',
    reason: 'this kernel has no ipvlan driver',
    proves: () => kernelLacksLink('ipvlan'),
  },
  {
    package: '@nspawn/assembly',
    file: 'test/network.test.ts',
    test: 'macvlan, ipvlan, --network-interface > --network-ipvlan makes iv-IF in the container',
    reason: 'this kernel has no ipvlan driver',
    proves: () => kernelLacksLink('ipvlan'),
  },
  {
    package: '@nspawn/runtime',
    file: 'test/seccomp.test.ts',
    test: 'system calls in a container, side by side with systemd-nspawn 252 > the i386 ABI under --personality=x86 (no audit rule there: libseccomp cannot express it)',
    reason: 'this kernel cannot run i386 programs (no IA32 emulation)',
    proves: () => {
      const r = kernelRunsI386();
      return { ok: !r.ok, detail: r.detail };
    },
  },
  {
    package: '@nspawn/runtime',
    file: 'test/seccomp.test.ts',
    test: 'system calls in a container, side by side with systemd-nspawn 252 > --capability=CAP_SYS_TIME opens @clock for the i386 ABI too',
    reason: 'this kernel cannot run i386 programs (no IA32 emulation)',
    proves: () => {
      const r = kernelRunsI386();
      return { ok: !r.ok, detail: r.detail };
    },
  },
  {
    package: '@nspawn/runtime',
    file: 'test/seccomp.test.ts',
    test: 'system calls in a container, side by side with systemd-nspawn 252 > --suppress-sync=yes for the i386 ABI too',
    reason: 'this kernel cannot run i386 programs (no IA32 emulation)',
    proves: () => {
      const r = kernelRunsI386();
      return { ok: !r.ok, detail: r.detail };
    },
  },
];
