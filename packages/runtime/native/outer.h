/*
 * The outer helper: the container's parent on the host side (outer_child() and run_container() of systemd-nspawn,
 * around clone()). It takes the plan's locks and makes its cgroup (handed over), detaches the host bind sources,
 * attaches the device program, joins --network-namespace-path=, clones the container into its cgroup, writes the
 * user namespace maps, waits for Node's "go" when the plan asks, then forwards the console (raw terminal, window size,
 * ^] escapes), reads /run/host/notify, and reports the end. Node decides what to send; handed over, handoff.c does.
 */
#pragma once

/*
 * Runs the plan, read from fd 3 (a socket from Node: the plan, later "go"; the events go back on it), or with
 * HANDOFF_FD >= 0 from that descriptor (a memfd, in nspawn's place after its execve: then never returns). Returns the
 * helper's exit status.
 */
int outer_main(int handoff_fd);
