/** vitest setup file: the reference cgroup of a test file that ran systemd-nspawn (./reference-cgroup.ts) is removed after it. */
import { afterAll } from 'vitest';
import { removeReferenceCgroup } from './reference-cgroup.js';

afterAll(() => removeReferenceCgroup());
