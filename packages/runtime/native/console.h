/*
 * The container's console: its pty in the container's own devpts (the child allocates it, as systemd-nspawn 252 does),
 * the host terminal in raw mode while it is forwarded (restored on every exit), the window size followed, and the
 * ^] escapes on the way in: ^]^]^] within a second kills the container, ^]^] then p powers it off, r reboots it.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Child: the console pty in the container's devpts (already mounted by the plan), /dev/console linked to it.
 * Returns the master; SLAVE_PATH gets the in-container path. Failures end the child. */
int console_allocate(char *slave_path, size_t sz);

/* our stdin (a terminal) into raw mode, keeping the output processing; console_restore() undoes it */
void console_raw(void);
void console_restore(void);

/* the host terminal's window size onto MASTER */
void console_copy_winsize(int master);

typedef struct {
        int count;      /* ^] seen in a row */
        uint64_t first; /* when the first of them came */
        int prefix;     /* ^]^] seen: the next key may be p or r */
} Escapes;

/*
 * BUF[0..N) from the terminal: reports each escape on the control channel ("escape kill|poweroff|reboot") and returns
 * from where on BUF goes to the container (what came before an escape does not).
 */
size_t console_escapes(Escapes *e, const char *buf, size_t n);
