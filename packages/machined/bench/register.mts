// pnpm bench: what registering with machined costs on a systemd host. Boots the test fixture (tools/systemd-host,
// root) and runs in-host.mjs there with the host's node: import, connect, CreateMachineWithNetwork with the read-back
// of unit and cgroup, UnregisterMachine; Node's start-up with and without importing this package; and what
// registering costs systemd-nspawn 252 itself there.
import { bootSystemdHost } from '@nspawn/systemd-host';
import { fileURLToPath } from 'node:url';

const inHost = fileURLToPath(new URL('./in-host.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const host = await bootSystemdHost({ name: 'mh-bench', log: console.log });
try {
  for (let i = 0; i < 2; i++) console.log((await host.run(['node', inHost], { scope: true })).trim());
  const time = async (argv: string[], scope = false) => {
    const t = performance.now();
    await host.run(argv, { scope });
    return performance.now() - t;
  };
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1]!.toFixed(1);
  const withLib: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < 9; i++) {
    withLib.push(await time(['node', '-e', `await import(${JSON.stringify(dist)})`]));
    bare.push(await time(['node', '-e', '0']));
  }
  console.log(`node -e 'import @nspawn/machined' ${med(withLib)} ms vs node -e 0 ${med(bare)} ms (medians, nsenter included)`);
  // what registration costs systemd-nspawn 252 itself, in the same host
  const reg: number[] = [];
  const noreg: number[] = [];
  for (let i = 0; i < 7; i++) {
    reg.push(await time(['systemd-nspawn', '-q', '-D', '/var/lib/machines/inner', '-M', `mh-bench-ref${i}`, '/bin/true'], true));
    noreg.push(await time(['systemd-nspawn', '-q', '--register=no', '--keep-unit', '-D', '/var/lib/machines/inner', '-M', `mh-bench-ref${i}`, '/bin/true'], true));
  }
  console.log(`systemd-nspawn 252 -D inner /bin/true: registered ${med(reg)} ms, --register=no --keep-unit ${med(noreg)} ms (medians)`);
} finally {
  await host.shutdown();
}
