// The monitor process of test/lifecycle.test.ts (nspawn-oci's __monitor verb, without the app).
import { monitorContainer } from '../dist/index.js';
const o = JSON.parse(process.argv[2]);
const { fds, ...rest } = o;
await monitorContainer({ ...rest, fds: Array.from({ length: fds ?? 0 }, (_, i) => 4 + i), log: () => {} }, 3);
