/*
 * nspawn-sys.node: the few system calls Node lacks that nspawn's start path needs, as a Node-API addon, so that a
 * start loads neither koffi (3 ms for its first call) nor Node's worker machinery:
 *   - execve(file, argv, envp[, blocked]), for the hand-over (src/handoff.ts), where nspawn replaces itself with the
 *     helper, with the signals the helper will read blocked from before the exec on.
 *     process.execve() does the same, but its JavaScript side first loads Node's worker machinery (to refuse a call
 *     from a worker thread) and emits an experimental-feature warning: about 2 ms of every start, more than the exec
 *     itself; and Node 24 aborts when it fails, where this throws.
 *   - ofdLock(fd): an exclusive open-file-description lock, F_OFD_SETLK (flock() where the kernel has none), as
 *     systemd's make_lock_file() takes it: true, or false when another holds it; -U's range lock (src/private-users.ts
 *     passes it to @nspawn/uidrange's tryLockFile()).
 *   - keepOnExec(fd): clears FD_CLOEXEC, so that the lock goes with the exec to the helper.
 *   - memfd(name, bytes): a sealed memfd holding BYTES, read from its start, not close-on-exec: the hand-over's plan
 *     goes to the helper in it (its descriptor number is the helper's only argument).
 *   - ioctl(fd, req, arg), flock(fd, op) and fsmount(fstype, options, attrs) (fsopen, fsconfig, fsmount: a detached
 *     mount), ofdLock(fd, wait, shared): what `nspawn -i` asks the kernel for (@nspawn/image's loop devices, its lock
 *     and its view of the image), so that an image start does not load koffi either (src/image-sys.ts in the
 *     assembly hands them to @nspawn/image).
 * Nothing else; without the addon (no compiler, another C library) nothing is handed over (the helper runs as
 * nspawn's child) and -U's lock goes through koffi. Not part of the helper: it runs inside Node, and the helper never
 * does.
 *
 * Built by scripts/build-helper.mjs with the machine's C compiler from this file and ofd-lock.c (prebuilt for x64 and
 * arm64 like the helper). It uses Node-API, whose C interface is ABI-stable: the few functions it needs are declared
 * here as js_native_api.h declares them, so no Node headers are needed to build it.
 */
#define _GNU_SOURCE /* strerrorname_np() */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/mount.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "ofd-lock.h"

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status; /* napi_ok is 0 */
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

extern napi_status napi_get_cb_info(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, napi_value *this_arg, void **data);
extern napi_status napi_get_value_string_utf8(napi_env env, napi_value value, char *buf, size_t bufsize, size_t *result);
extern napi_status napi_get_array_length(napi_env env, napi_value value, uint32_t *result);
extern napi_status napi_get_element(napi_env env, napi_value object, uint32_t index, napi_value *result);
extern napi_status napi_create_function(napi_env env, const char *utf8name, size_t length, napi_callback cb, void *data, napi_value *result);
extern napi_status napi_set_named_property(napi_env env, napi_value object, const char *utf8name, napi_value value);
extern napi_status napi_throw_error(napi_env env, const char *code, const char *msg);
extern napi_status napi_get_value_int32(napi_env env, napi_value value, int32_t *result);
extern napi_status napi_get_boolean(napi_env env, int value, napi_value *result);
extern napi_status napi_get_undefined(napi_env env, napi_value *result);
extern napi_status napi_get_buffer_info(napi_env env, napi_value value, void **data, size_t *length);
extern napi_status napi_get_typedarray_info(napi_env env, napi_value typedarray, int *type, size_t *length, void **data, napi_value *arraybuffer, size_t *byte_offset);
extern napi_status napi_create_int32(napi_env env, int32_t value, napi_value *result);
extern napi_status napi_get_value_int64(napi_env env, napi_value value, int64_t *result);

/* A JavaScript string as a new C string; NULL when it is not a string (or out of memory). */
static char *c_string(napi_env env, napi_value v) {
        size_t n = 0;
        if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != 0)
                return NULL;
        char *s = malloc(n + 1);
        if (s && napi_get_value_string_utf8(env, v, s, n + 1, &n) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

/* A JavaScript array of strings as a NULL-terminated C array; NULL when it is not one. */
static char **c_strings(napi_env env, napi_value a) {
        uint32_t n = 0;
        if (napi_get_array_length(env, a, &n) != 0)
                return NULL;
        char **out = calloc((size_t) n + 1, sizeof *out);
        for (uint32_t i = 0; out && i < n; i++) {
                napi_value e;
                if (napi_get_element(env, a, i, &e) != 0 || !(out[i] = c_string(env, e)))
                        return NULL; /* (the process ends either way: an exception, then nspawn's exit) */
        }
        return out;
}

/* Throws errno E: its name as the code, strerror() as the message; NULL, for the function to return. */
static napi_value throw_errno(napi_env env, int e) {
        napi_throw_error(env, strerrorname_np(e) ? strerrorname_np(e) : "EIO", strerror(e));
        return NULL;
}

/* Throws EINVAL with the function's USAGE; NULL, for it to return. */
static napi_value usage_error(napi_env env, const char *usage) {
        napi_throw_error(env, "EINVAL", usage);
        return NULL;
}

/* The call's arguments into ARGS (N slots; those not given are undefined): how many were given, or -1 after
 * usage_error() when fewer than MIN. */
static int call_args(napi_env env, napi_callback_info info, napi_value *args, size_t n, size_t min, const char *usage) {
        size_t argc = n;
        if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != 0 || argc < min) {
                usage_error(env, usage);
                return -1;
        }
        return (int) argc;
}

/* call_args() of a call whose first argument is a descriptor, which goes into FD; -1 (usage_error()) when it is not one. */
static int fd_call_args(napi_env env, napi_callback_info info, napi_value *args, size_t n, size_t min, int32_t *fd, const char *usage) {
        int argc = call_args(env, info, args, n, min < 1 ? 1 : min, usage);
        if (argc < 0)
                return -1;
        if (napi_get_value_int32(env, args[0], fd) != 0 || *fd < 0) {
                usage_error(env, usage);
                return -1;
        }
        return argc;
}

/* A number, or undefined, for a function to return. */
static napi_value int_result(napi_env env, int32_t v) {
        napi_value out;
        napi_create_int32(env, v, &out);
        return out;
}
static napi_value undefined_result(napi_env env) {
        napi_value out;
        napi_get_undefined(env, &out);
        return out;
}

/* execve(file, argv, envp[, blocked]): returns only by throwing, with strerror(errno) as the message and the errno name as code. */
static napi_value js_execve(napi_env env, napi_callback_info info) {
        napi_value args[4];
        int argc = call_args(env, info, args, 4, 3, "execve(file, argv, envp[, blocked]) takes three or four arguments");
        if (argc < 0)
                return NULL;
        /* blocked: signal numbers blocked from before the exec on (the mask goes with it): the program gets them once
         * it is ready for them, not in the moment between the exec and its first instructions, when their default
         * action (SIGTERM: the end) would be taken */
        sigset_t block, saved_mask;
        sigemptyset(&block);
        uint32_t n_block = 0;
        if (argc > 3 && napi_get_array_length(env, args[3], &n_block) == 0)
                for (uint32_t i = 0; i < n_block; i++) {
                        napi_value e;
                        int32_t sig = 0;
                        if (napi_get_element(env, args[3], i, &e) == 0 && napi_get_value_int32(env, e, &sig) == 0 && sig > 0 && sig < NSIG)
                                sigaddset(&block, sig);
                }
        char *file = c_string(env, args[0]);
        char **argv = c_strings(env, args[1]);
        char **envp = c_strings(env, args[2]);
        if (!file || !argv || !envp)
                return usage_error(env, "execve(): file must be a string, argv and envp arrays of strings");
        /* Node opens its standard streams close-on-exec: the program after it gets them as they are */
        int saved[3];
        for (int fd = 0; fd < 3; fd++) {
                saved[fd] = fcntl(fd, F_GETFD);
                if (saved[fd] >= 0)
                        (void) fcntl(fd, F_SETFD, saved[fd] & ~FD_CLOEXEC);
        }
        pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
        execve(file, argv, envp);
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
        for (int fd = 0; fd < 3; fd++)
                if (saved[fd] >= 0)
                        (void) fcntl(fd, F_SETFD, saved[fd]);
        return throw_errno(env, e);
}

/* The descriptor of the single argument; -1 (an exception thrown) when it is not an integer. */
static int fd_arg(napi_env env, napi_callback_info info) {
        napi_value arg;
        int32_t fd = -1;
        return fd_call_args(env, info, &arg, 1, 1, &fd, "a file descriptor is expected") < 0 ? -1 : fd;
}

/* ofdLock(fd[, wait[, shared]]): true when the lock (exclusive, or shared with SHARED) is taken, false when another
 * holds it (without WAIT); throws on any other error. */
static napi_value js_ofd_lock(napi_env env, napi_callback_info info) {
        napi_value args[3];
        int32_t fd = -1, wait = 0, shared = 0;
        int argc = fd_call_args(env, info, args, 3, 1, &fd, "a file descriptor is expected");
        if (argc < 0)
                return NULL;
        if (argc > 1)
                (void) napi_get_value_int32(env, args[1], &wait);
        if (argc > 2)
                (void) napi_get_value_int32(env, args[2], &shared);
        int r = ofd_lock(fd, !shared, wait);
        napi_value out;
        if (r == 0 || errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK) {
                napi_get_boolean(env, r == 0, &out);
                return out;
        }
        return throw_errno(env, errno);
}

/* throws the errno E with code its name and message "WHAT: NAME"; NULL, for the function to return */
static napi_value throw_errno_at(napi_env env, int e, const char *what) {
        const char *name = strerrorname_np(e) ? strerrorname_np(e) : "EIO";
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s", what, name);
        napi_throw_error(env, name, msg);
        return NULL;
}

/* ioctl(fd, req, arg): ARG a Buffer (passed by pointer, read and written in place) or a number (by value); the
 * result (>= 0). Throws with the errno name as code. */
static napi_value js_ioctl(napi_env env, napi_callback_info info) {
        static const char usage[] = "ioctl(fd, req, arg) takes a descriptor, a request and a Buffer or a number";
        napi_value args[3];
        int32_t fd = -1;
        int64_t req = 0, val = 0;
        void *buf = NULL;
        size_t len = 0;
        if (fd_call_args(env, info, args, 3, 3, &fd, usage) < 0)
                return NULL;
        if (napi_get_value_int64(env, args[1], &req) != 0)
                return usage_error(env, usage);
        int r;
        if (napi_get_buffer_info(env, args[2], &buf, &len) == 0)
                r = ioctl(fd, (unsigned long) req, buf);
        else if (napi_get_value_int64(env, args[2], &val) == 0)
                r = ioctl(fd, (unsigned long) req, (unsigned long) val);
        else
                return usage_error(env, "ioctl(): the argument is neither a Buffer nor a number");
        return r < 0 ? throw_errno(env, errno) : int_result(env, r);
}

/* flock(fd, op). Throws with the errno name as code. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
        static const char usage[] = "flock(fd, op) takes a descriptor and an operation";
        napi_value args[2];
        int32_t fd = -1, op = 0;
        if (fd_call_args(env, info, args, 2, 2, &fd, usage) < 0)
                return NULL;
        if (napi_get_value_int32(env, args[1], &op) != 0)
                return usage_error(env, usage);
        return flock(fd, op) < 0 ? throw_errno(env, errno) : undefined_result(env);
}

/* fsmount(fstype, options, attrs): a detached mount of a new (or shared) superblock of FSTYPE, close-on-exec:
 * fsopen(), fsconfig() of each of OPTIONS ([key, value, key, value...], a null value sets a flag), FSCONFIG_CMD_CREATE,
 * fsmount() with the MOUNT_ATTR_* ATTRS; its descriptor. Throws with the errno name as code and the step ("fsopen",
 * "option KEY", "create", "fsmount") in the message. */
static napi_value js_fsmount(napi_env env, napi_callback_info info) {
        static const char usage[] = "fsmount(fstype, [key, value...], attrs) takes a type, pairs of options and attributes";
        napi_value args[3];
        int32_t attrs = 0;
        uint32_t n = 0;
        if (call_args(env, info, args, 3, 3, usage) < 0)
                return NULL;
        if (napi_get_array_length(env, args[1], &n) != 0 || (n & 1) || napi_get_value_int32(env, args[2], &attrs) != 0)
                return usage_error(env, usage);
        char *fstype = c_string(env, args[0]);
        if (!fstype)
                return usage_error(env, "fsmount(): the file system type is not a string");
        int fs = (int) syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
        free(fstype);
        if (fs < 0)
                return throw_errno_at(env, errno, "fsopen");
        for (uint32_t i = 0; i < n; i += 2) {
                napi_value k, v;
                char *key = NULL, *value = NULL;
                if (napi_get_element(env, args[1], i, &k) == 0)
                        key = c_string(env, k);
                if (napi_get_element(env, args[1], i + 1, &v) == 0)
                        value = c_string(env, v); /* NULL: a flag */
                if (!key) {
                        free(value);
                        close(fs);
                        return usage_error(env, "fsmount(): an option's key is not a string");
                }
                int r = (int) syscall(SYS_fsconfig, fs, value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, value, 0);
                int e = errno;
                if (r < 0) {
                        char what[160];
                        snprintf(what, sizeof what, "option %s", key);
                        free(key);
                        free(value);
                        close(fs);
                        return throw_errno_at(env, e, what);
                }
                free(key);
                free(value);
        }
        if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
                int e = errno;
                close(fs);
                return throw_errno_at(env, e, "create");
        }
        int m = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned int) attrs);
        int e = errno;
        close(fs);
        return m < 0 ? throw_errno_at(env, e, "fsmount") : int_result(env, m);
}

/* keepOnExec(fd): clears FD_CLOEXEC. */
static napi_value js_keep_on_exec(napi_env env, napi_callback_info info) {
        int fd = fd_arg(env, info);
        if (fd < 0)
                return NULL;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                return throw_errno(env, errno);
        return undefined_result(env);
}

/* memfd(name, bytes): a memfd with BYTES (a Buffer or Uint8Array), sealed, at offset 0, inherited by an exec; its
 * descriptor. Throws on failure. */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
        static const char usage[] = "memfd(name, bytes) takes a name and a Buffer";
        napi_value args[2];
        void *data = NULL;
        size_t len = 0;
        int type = 0;
        char *name = NULL;
        if (call_args(env, info, args, 2, 2, usage) < 0)
                return NULL;
        if (!(name = c_string(env, args[0])) ||
            (napi_get_buffer_info(env, args[1], &data, &len) != 0 && napi_get_typedarray_info(env, args[1], &type, &len, &data, NULL, NULL) != 0)) {
                free(name);
                return usage_error(env, usage);
        }
        int fd = memfd_create(name, MFD_ALLOW_SEALING);
        free(name);
        if (fd < 0)
                return throw_errno(env, errno);
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, (const char *) data + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? errno : EIO;
                        close(fd);
                        return throw_errno(env, e);
                }
                off += (size_t) n;
        }
        /* what the helper reads is what was written: no one can change it on the way */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
                int e = errno;
                close(fd);
                return throw_errno(env, e);
        }
        return int_result(env, fd);
}

napi_value napi_register_module_v1(napi_env env, napi_value exports);
napi_value napi_register_module_v1(napi_env env, napi_value exports) {
        static const struct {
                const char *name;
                napi_callback cb;
        } fns[] = { { "execve", js_execve }, { "ofdLock", js_ofd_lock }, { "keepOnExec", js_keep_on_exec }, { "memfd", js_memfd },
                    { "ioctl", js_ioctl },     { "flock", js_flock },     { "fsmount", js_fsmount } };
        for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
                napi_value f;
                if (napi_create_function(env, fns[i].name, strlen(fns[i].name), fns[i].cb, NULL, &f) == 0)
                        (void) napi_set_named_property(env, exports, fns[i].name, f);
        }
        return exports;
}
