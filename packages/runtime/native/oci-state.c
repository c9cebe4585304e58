/* nspawn-oci's front end: the state under --root (see oci-state.h). */
#define _GNU_SOURCE
#include "oci-state.h"
#include "oci-socket.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

char oci_error[8192];

int oci_check_id(const char *id) {
        if (!id || !*id) {
                snprintf(oci_error, sizeof oci_error, "container id cannot be empty");
                return -1;
        }
        for (const char *p = id; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' || c == '.')) {
                        snprintf(oci_error, sizeof oci_error, "invalid container id format: %s", id);
                        return -1;
                }
        }
        if (!strcmp(id, ".") || !strcmp(id, "..")) {
                snprintf(oci_error, sizeof oci_error, "invalid container id format: %s", id);
                return -1;
        }
        return 0;
}

static const char *path_in(char *buf, size_t size, const char *root, const char *id, const char *name) {
        size_t rl = strlen(root);
        while (rl > 1 && root[rl - 1] == '/')
                rl--;
        snprintf(buf, size, "%.*s/%s%s%s", (int) rl, root, id, name ? "/" : "", name ? name : "");
        return buf;
}

const char *oci_dir(const char *root, const char *id) {
        static char b[PATH_MAX];
        return path_in(b, sizeof b, root, id, NULL);
}

const char *oci_record_file(const char *root, const char *id) {
        static char b[PATH_MAX];
        return path_in(b, sizeof b, root, id, "state.json");
}

const char *oci_start_socket(const char *root, const char *id) {
        static char b[PATH_MAX];
        return path_in(b, sizeof b, root, id, "start.sock");
}

static char *read_file(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        Buf b = { 0 };
        buf_read_all(&b, fd);
        close(fd);
        return b.p;
}

int oci_load(const char *root, const char *id, Record *r) {
        if (oci_check_id(id) < 0)
                return -1;
        char *text = read_file(oci_record_file(root, id));
        if (!text) {
                snprintf(oci_error, sizeof oci_error, "container does not exist: %s", id);
                return -1;
        }
        memset(r, 0, sizeof *r);
        r->json = json_parse(text);
        if (!r->json || r->json->t != J_OBJ) {
                snprintf(oci_error, sizeof oci_error, "%s: not a state record (JSON)", oci_record_file(root, id));
                return -1;
        }
        r->oci_version = json_str(r->json, "ociVersion");
        r->id = json_str(r->json, "id");
        r->start_time = json_str(r->json, "startTime");
        r->bundle = json_str(r->json, "bundle");
        r->pid = json_long(r->json, "pid", 0);
        r->monitor = json_long(r->json, "monitor", 0);
        r->annotations = json_get(r->json, "annotations");
        r->cgroups = json_get(r->json, "cgroups");
        r->hooks = json_get(r->json, "hooks");
        if (r->cgroups && r->cgroups->t != J_ARR)
                r->cgroups = NULL;
        if (r->hooks && r->hooks->t != J_ARR)
                r->hooks = NULL;
        if (!r->oci_version || !r->id || !r->start_time || !r->bundle) {
                snprintf(oci_error, sizeof oci_error, "%s: not a state record (a field is missing)", oci_record_file(root, id));
                return -1;
        }
        return 0;
}

int oci_proc_stat(long pid, char *state, char *start_time, size_t size) {
        if (pid <= 0)
                return -1;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        char *s = read_file(path);
        if (!s)
                return -1;
        char *p = strrchr(s, ')');
        if (!p || p[1] != ' ') {
                free(s);
                return -1;
        }
        p += 2;
        /* rest[0] is the state, rest[19] the start time */
        *state = *p;
        for (int i = 0; i < 19 && p; i++) {
                p = strchr(p, ' ');
                if (p)
                        p++;
        }
        if (!p) {
                free(s);
                return -1;
        }
        size_t n = strcspn(p, " \n");
        snprintf(start_time, size, "%.*s", (int) n, p);
        free(s);
        return 0;
}

int oci_alive(long pid, const char *start_time) {
        char st, t[32];
        if (oci_proc_stat(pid, &st, t, sizeof t) < 0)
                return 0;
        return st != 'Z' && st != 'X' && !strcmp(t, start_time);
}

static int file_trimmed_is(const char *dir, const char *name, const char *want, int *exists) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        char *s = read_file(path);
        *exists = s != NULL;
        if (!s)
                return 0;
        char *b = s;
        while (*b == ' ' || *b == '\n' || *b == '\t')
                b++;
        size_t n = strlen(b);
        while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\t'))
                n--;
        int is = strlen(want) == n && !strncmp(b, want, n);
        free(s);
        return is;
}

static int frozen(const Record *r) {
        for (size_t i = 0; r->cgroups && i < r->cgroups->n; i++) {
                const JVal *d = r->cgroups->v[i];
                if (d->t != J_STR)
                        continue;
                int exists;
                if (file_trimmed_is(d->s, "cgroup.freeze", "1", &exists))
                        return 1;
                int thawed = file_trimmed_is(d->s, "freezer.state", "THAWED", &exists);
                if (exists && !thawed)
                        return 1;
        }
        return 0;
}

const char *oci_status(const char *root, const Record *r) {
        if (!oci_alive(r->pid, r->start_time))
                return "stopped";
        if (access(oci_start_socket(root, r->id), F_OK) == 0)
                return "created";
        if (frozen(r))
                return "paused";
        return "running";
}

int oci_has_hooks(const Record *r, const char *kind) {
        if (!r->hooks)
                return -1;
        for (size_t i = 0; i < r->hooks->n; i++)
                if (r->hooks->v[i]->t == J_STR && !strcmp(r->hooks->v[i]->s, kind))
                        return 1;
        return 0;
}

const char *oci_socket_address(const char *path) {
        static char b[PATH_MAX];
        if (strlen(path) < 100)
                return path;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash)
                return path;
        *slash = 0;
        int fd = open(*dir ? dir : "/", O_RDONLY | O_CLOEXEC | O_DIRECTORY);
        if (fd < 0)
                return path;
        snprintf(b, sizeof b, "/proc/self/fd/%d/%s", fd, slash + 1);
        return b;
}

int oci_tell(const char *path, const char *word, char *answer, size_t size) {
        int s = unix_connect(oci_socket_address(path));
        if (s < 0)
                return -1;
        char line[64];
        snprintf(line, sizeof line, "%s\n", word);
        if (write(s, line, strlen(line)) < 0) {
                /* the answer may be there all the same: read it */
        }
        size_t got = 0;
        for (;;) {
                ssize_t n = read(s, answer + got, size - 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (got == size - 1)
                        break;
        }
        answer[got] = 0;
        close(s);
        return 0;
}

static void remove_at(int dfd, const char *name, dev_t dev) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
                int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0) {
                        DIR *d = fdopendir(fd);
                        if (d) {
                                struct dirent *e;
                                while ((e = readdir(d)))
                                        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                                                remove_at(dirfd(d), e->d_name, dev);
                                closedir(d);
                        } else
                                close(fd);
                }
                (void) unlinkat(dfd, name, AT_REMOVEDIR);
        } else if (!S_ISDIR(st.st_mode))
                (void) unlinkat(dfd, name, 0);
}

void oci_remove_dir(const char *root, const char *id) {
        struct stat st;
        const char *dir = oci_dir(root, id);
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0)
                return;
        remove_at(rfd, id, st.st_dev);
        close(rfd);
}

int oci_write_atomic(const char *file, const char *data) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s.%d.tmp", file, (int) getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -1;
        size_t n = strlen(data);
        ssize_t w = write(fd, data, n);
        int e = errno;
        close(fd);
        if (w != (ssize_t) n || rename(tmp, file) < 0) {
                if (w == (ssize_t) n)
                        e = errno;
                unlink(tmp);
                errno = e;
                return -1;
        }
        return 0;
}
