// The benchmarks' shared table (every package's bench uses it; repository tooling, not part of any package): median, mean and min per case, and nspawn against systemd-nspawn with its goal.
function stat(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/** Prints TITLE and a row per case of TIMES ({name: ms[]}); returns the statistics by name. */
export function report(title, times, { digits = 2, goal } = {}) {
  console.log(title);
  console.log('case'.padEnd(16), 'median'.padStart(8), 'mean'.padStart(8), 'min'.padStart(8));
  const st = {};
  for (const [name, xs] of Object.entries(times)) {
    st[name] = stat(xs);
    const f = (v) => v.toFixed(digits).padStart(8);
    console.log(name.padEnd(16), f(st[name].median), f(st[name].mean), f(st[name].min));
  }
  if (st['systemd-nspawn'] && goal !== undefined) {
    const ratio = st.nspawn.median / st['systemd-nspawn'].median;
    console.log(`nspawn / systemd-nspawn (median): ${ratio.toFixed(2)}  (goal <= ${goal}: ${ratio <= goal ? 'met' : 'NOT met'})`);
  }
  return st;
}

/**
 * For a benchmark that runs systemd-nspawn 252 --keep-unit, which splits its caller's cgroup into payload/ and
 * supervisor/ and leaves them: the benchmark moves into a cgroup of its own (@nspawn/test-kit's reference cgroup),
 * and back out at its exit, removing it. Needs root.
 */
export async function inReferenceCgroup() {
  const { enterReferenceCgroup } = await import('../tools/test-kit/src/reference-cgroup.ts');
  const leave = enterReferenceCgroup();
  process.on('exit', () => {
    try {
      leave();
    } catch (e) {
      console.error(`bench: the reference cgroup stays: ${e.message}`);
      process.exitCode = 1;
    }
  });
}
