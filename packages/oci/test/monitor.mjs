// The monitor process of test/lifecycle.test.ts (nspawn-oci's __monitor verb, without the app).
import { monitorContainer } from '../dist/index.js';
const o = JSON.parse(process.argv[2]);
await monitorContainer({ ...o, log: () => {} }, 3);
