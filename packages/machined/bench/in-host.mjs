import { spawn } from 'node:child_process';
const t00 = performance.now();
const { openMachined } = await import('../dist/index.js');
const tImport = performance.now() - t00;
const res = [];
let firstConnectCpu = 0;
for (let i = 0; i < 12; i++) {
  const child = spawn('sleep', ['100'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const m = await openMachined();
  const t1 = performance.now();
  const c1 = process.cpuUsage(c0);
  if (i === 0) firstConnectCpu = (c1.user + c1.system) / 1000;
  const reg = await m.register({ name: `mh-bench${i}`, leader: child.pid, rootDirectory: '/var/lib/machines/inner' });
  const t2 = performance.now();
  await m.unregister(`mh-bench${i}`);
  const t3 = performance.now();
  m.close(); child.kill('SIGKILL');
  res.push([t1 - t0, t2 - t1, t3 - t2]);
}
const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)].toFixed(1);
console.log(`import @nspawn/machined ${tImport.toFixed(1)} ms; first connect (loads the D-Bus library) ${res[0][0].toFixed(1)} ms (CPU ${firstConnectCpu.toFixed(1)} ms); first register ${res[0][1].toFixed(1)} ms`);
const warm = res.slice(1);
console.log(`warm medians: connect ${med(warm.map((r) => r[0]))} ms, register (Create+GetAll+GetUnit+Get) ${med(warm.map((r) => r[1]))} ms, unregister ${med(warm.map((r) => r[2]))} ms`);
