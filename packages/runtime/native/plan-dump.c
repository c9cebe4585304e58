/*
 * "nspawn-helper --decode": the decoder's result as canonical JSON, for the tests (src/protocol.test.ts feeds random
 * plans through encodePlan() and this, and compares). Every integer is a decimal string (64-bit values do not fit a
 * JavaScript number), every list and flag is always there, a value that was not given is left out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "execin.h"
#include "netcfg.h"
#include "plan.h"
#include "wire.h"

static int first[32];
static int depth;

static void js(const char *s) {
        putchar('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        printf("\\%c", *p);
                else if (*p < 0x20)
                        printf("\\u%04x", *p);
                else
                        putchar(*p);
        }
        putchar('"');
}
static void sep(void) {
        if (!first[depth])
                putchar(',');
        first[depth] = 0;
}
static void open_(char c) {
        putchar(c);
        first[++depth] = 1;
}
static void close_(char c) {
        putchar(c);
        depth--;
}
static void key(const char *k) {
        sep();
        js(k);
        putchar(':');
}
static void kstr(const char *k, const char *v) {
        if (!v)
                return;
        key(k);
        js(v);
}
static void knum(const char *k, unsigned long long v) {
        key(k);
        printf("\"%llu\"", v);
}
static void kbool(const char *k, int v) {
        key(k);
        fputs(v ? "true" : "false", stdout);
}
static void kstrs(const char *k, const char *const *v, size_t n) {
        key(k);
        open_('[');
        for (size_t i = 0; i < n; i++) {
                sep();
                js(v[i]);
        }
        close_(']');
}
static void khex(const char *k, const unsigned char *b, size_t n) {
        key(k);
        putchar('"');
        for (size_t i = 0; i < n; i++)
                printf("%02x", b[i]);
        putchar('"');
}
static void klimit(const char *k, rlim_t v) {
        if (v == RLIM_INFINITY)
                kstr(k, "infinity");
        else
                knum(k, (unsigned long long) v);
}

static void dump_ops(const Plan *p) {
        key("ops");
        open_('[');
        for (size_t i = 0; i < p->n_ops; i++) {
                const Op *o = &p->ops[i];
                sep();
                open_('{');
                kstr("kind", op_kind_names[o->kind]);
                knum("flags", o->flags);
                kstr("source", o->src);
                kstr("target", o->target);
                kstr("fstype", o->fstype);
                knum("mountFlags", o->mflags);
                kstr("data", o->data);
                knum("mode", o->mode);
                knum("dev", o->dev);
                close_('}');
        }
        close_(']');
}

static void dump_net(const Plan *p) {
        key("net");
        open_('{');
        key("steps");
        open_('[');
        for (size_t i = 0; i < p->net.n; i++) {
                const NetcfgStep *s = &p->net.steps[i];
                char a[INET6_ADDRSTRLEN] = "";
                sep();
                open_('{');
                kstr("kind", s->kind == 'u' ? "up" : s->kind == 'a' ? "address" : "route");
                kstr("ifname", s->ifname);
                if (s->kind != 'u') {
                        knum("family", s->family == AF_INET6 ? 6 : 4);
                        inet_ntop(s->family, s->addr, a, sizeof a);
                        kstr(s->kind == 'a' ? "address" : "gateway", a);
                }
                if (s->kind == 'a')
                        knum("prefixLength", (unsigned) s->prefix);
                close_('}');
        }
        close_(']');
        kstr("netns", p->net.netns_path);
        close_('}');
        if (p->nsjoin.n) {
                key("nsJoin");
                open_('[');
                for (size_t i = 0; i < p->nsjoin.n; i++) {
                        open_('{');
                        knum("type", (unsigned) p->nsjoin.type[i]);
                        kstr("path", p->nsjoin.path[i]);
                        close_('}');
                }
                close_(']');
        }
}

static void dump_host_side(const Plan *p) {
        key("cgroup");
        open_('{');
        key("v1");
        open_('[');
        for (size_t i = 0; i < p->cgroup.n_v1; i++) {
                sep();
                open_('{');
                kstr("scope", p->cgroup.v1[i].scope);
                kstr("home", p->cgroup.v1[i].home);
                close_('}');
        }
        close_(']');
        if (p->cgroup.v2_scope) {
                key("unified");
                open_('{');
                kstr("scope", p->cgroup.v2_scope);
                kstr("home", p->cgroup.v2_home);
                close_('}');
        }
        close_('}');
        key("cgroupOps");
        open_('[');
        for (size_t i = 0; i < p->cgops.n; i++) {
                const CgOp *o = &p->cgops.op[i];
                sep();
                open_('{');
                kstr("kind", o->kind == 'm' ? "mkdir" : o->kind == 'w' ? "write" : "chown");
                kstr("path", o->path);
                if (o->kind == 'm') {
                        kbool("exclusive", o->exclusive);
                        kstr("busy", o->busy);
                } else if (o->kind == 'w')
                        kstrs("data", o->data, o->n_data);
                else {
                        knum("uid", o->uid);
                        knum("gid", o->gid);
                }
                close_('}');
        }
        close_(']');
        for (int inherited = 0; inherited < 2; inherited++) {
                key(inherited ? "inheritedLocks" : "locks");
                open_('[');
                for (size_t i = 0; i < p->locks.n; i++) {
                        const Lock *l = &p->locks.v[i];
                        if ((l->busy == NULL) != inherited)
                                continue;
                        sep();
                        open_('{');
                        if (inherited)
                                knum("fd", (unsigned) l->fd);
                        kstr("path", l->path);
                        kbool("exclusive", l->exclusive);
                        kstr("busy", l->busy);
                        close_('}');
                }
                close_(']');
        }
        kstrs("removeSubvolumes", p->ephemeral.subvols.v, p->ephemeral.subvols.n);
        kstrs("removeMounts", p->ephemeral.mounts.v, p->ephemeral.mounts.n);
        kstrs("removeTrees", p->ephemeral.trees.v, p->ephemeral.trees.n);
        const HandoffPlan *h = &p->handoff;
        if (h->on) {
                key("handoff");
                open_('{');
                kbool("quiet", h->quiet);
                knum("killSignal", (unsigned) h->kill_signal);
                kbool("keepUnit", h->keep_unit);
                key("messages");
                open_('{');
                kstr("ok", h->msg_ok);
                kstr("fail", h->msg_fail);
                kstr("shutdown", h->msg_shutdown);
                kstr("reboot", h->msg_reboot);
                kstr("signal", h->msg_signal);
                kstr("halt", h->msg_halt);
                close_('}');
                kstrs("signalNames", h->signames, h->n_signames);
                kstrs("removeCgroups", h->rm.v, h->rm.n);
                kstr("killFile", h->kill_file);
                kstrs("removeSlices", h->slices.v, h->slices.n);
                kstr("sliceMarker", h->marker);
                kstrs("reexec", h->reexec, h->n_reexec);
                close_('}');
        }
}

static void dump_plan(const Plan *p) {
        static const char *const consoles[] = { "pipe", "interactive", "read-only", "passive" };
        open_('{');
        kstr("root", p->root);
        knum("cloneFlags", p->clone_flags);
        kbool("sync", p->sync);
        if (p->cgns_late) {
                kbool("cgnsLate", 1);
                key("cgroupMounts");
                open_('{');
                knum("from", p->cg_from);
                knum("to", p->cg_to);
                close_('}');
        }
        if (p->reset_loginuid)
                kbool("resetLoginuid", 1);
        for (int idmap = 0; idmap < 2; idmap++)
                if (idmap ? p->idmap : p->usermap) {
                        key(idmap ? "idmap" : "usermap");
                        open_('{');
                        knum("shift", idmap ? p->idmap_shift : p->usermap_shift);
                        knum("range", idmap ? p->idmap_range : p->usermap_range);
                        close_('}');
                }
        kstr("hostname", p->hostname);
        dump_ops(p);
        kstr("console", consoles[p->console]);
        if (p->personality >= 0)
                knum("personality", (unsigned) p->personality);
        key("rlimits");
        open_('[');
        for (size_t i = 0; i < p->n_rlimits; i++) {
                sep();
                open_('{');
                knum("resource", (unsigned) p->rlimits[i].res);
                klimit("soft", p->rlimits[i].lim.rlim_cur);
                klimit("hard", p->rlimits[i].lim.rlim_max);
                close_('}');
        }
        close_(']');
        if (p->uid >= 0)
                knum("uid", (unsigned long long) p->uid);
        if (p->gid >= 0)
                knum("gid", (unsigned long long) p->gid);
        if (p->set_groups) {
                key("groups");
                open_('[');
                for (size_t i = 0; i < p->n_groups; i++) {
                        sep();
                        printf("\"%u\"", (unsigned) p->groups[i]);
                }
                close_(']');
        }
        kstr("chdir", p->chdir);
        kbool("noNewPrivileges", p->no_new_privs);
        if (p->oom_set) {
                key("oomScoreAdjust");
                printf("\"%d\"", p->oom_score_adj);
        }
        if (p->cpus) {
                key("cpuAffinity");
                open_('[');
                for (size_t c = 0; c < p->cpus_size * 8; c++)
                        if (CPU_ISSET_S(c, p->cpus_size, p->cpus)) {
                                sep();
                                printf("\"%zu\"", c);
                        }
                close_(']');
        }
        if (p->caps.set) {
                key("capabilities");
                open_('{');
                knum("bounding", p->caps.bounding);
                knum("effective", p->caps.effective);
                knum("permitted", p->caps.permitted);
                knum("inheritable", p->caps.inheritable);
                knum("ambient", p->caps.ambient);
                close_('}');
        }
        kstr("capabilityWarning", p->caps_warning);
        kbool("sessionKeyring", p->session_keyring);
        if (p->seccomp.prog) {
                unsigned char b[8];
                key("seccomp");
                putchar('"');
                for (unsigned i = 0; i < p->seccomp.len; i++) {
                        const struct sock_filter *f = &p->seccomp.prog[i];
                        b[0] = (unsigned char) f->code, b[1] = (unsigned char) (f->code >> 8), b[2] = f->jt, b[3] = f->jf;
                        for (int k = 0; k < 4; k++)
                                b[4 + k] = (unsigned char) (f->k >> (8 * k));
                        for (int k = 0; k < 8; k++)
                                printf("%02x", b[k]);
                }
                putchar('"');
        }
        kstrs("seccompWarnings", p->seccomp.warnings.v, p->seccomp.warnings.n);
        if (p->seccomp.flags || p->seccomp.late) {
                key("seccompOci");
                open_('{');
                knum("flags", p->seccomp.flags);
                kbool("late", p->seccomp.late);
                close_('}');
        }
        if (p->devices.insns) {
                key("deviceProgram");
                open_('{');
                kstr("cgroup", p->devices.cgroup);
                khex("program", (const unsigned char *) p->devices.insns, p->devices.n * sizeof *p->devices.insns);
                kbool("optional", p->devices.optional);
                close_('}');
        }
        kbool("asPid2", p->pid2);
        kbool("loopback", p->loopback);
        if (p->volatile_mode)
                kstr("volatileMode", p->volatile_mode);
        if (p->late_sync) {
                kbool("lateSync", 1);
                kbool("leaveAfterStart", p->leave);
        }
        if (p->bind_copies_first)
                kbool("bindCopiesFirst", 1);
        if (p->oci_fds) {
                key("ociFds");
                open_('{');
                key("consoleSocket");
                printf("\"%d\"", p->console_socket);
                key("pass");
                open_('[');
                for (size_t i = 0; i < p->n_pass_fds; i++) {
                        sep();
                        printf("\"%d\"", p->pass_fds[i]);
                }
                close_(']');
                close_('}');
        }
        key("bindMaps");
        open_('[');
        for (size_t i = 0; i < p->n_bindmaps; i++) {
                sep();
                open_('{');
                knum("uid", p->bindmaps[i].uid);
                knum("hostUid", p->bindmaps[i].host_uid);
                knum("gid", p->bindmaps[i].gid);
                knum("hostGid", p->bindmaps[i].host_gid);
                close_('}');
        }
        close_(']');
        key("blobs");
        open_('[');
        for (size_t i = 0; i < p->n_blobs; i++) {
                sep();
                putchar('"');
                for (size_t k = 0; k < p->blobs[i].size; k++)
                        printf("%02x", p->blobs[i].data[k]);
                putchar('"');
        }
        close_(']');
        if (p->n_held) {
                key("heldFds");
                open_('[');
                for (size_t i = 0; i < p->n_held; i++) {
                        sep();
                        printf("\"%d\"", p->held_fds[i]);
                }
                close_(']');
        }
        if (p->image.n) {
                key("imageSteps");
                open_('[');
                for (size_t i = 0; i < p->image.n; i++) {
                        const ImageStep *s = &p->image.step[i];
                        sep();
                        open_('{');
                        kstr("op", image_step_names[s->kind]);
                        kstr("source", s->source);
                        kstr("target", s->target);
                        kstr("fstype", s->fstype);
                        kstr("data", s->data);
                        knum("flags", s->flags);
                        knum("mode", s->mode);
                        kbool("mkdir", s->mkdir);
                        if (s->idmap)
                                kbool("idmap", s->idmap);
                        close_('}');
                }
                close_(']');
        }
        if (p->pivot_new) {
                key("pivotRoot");
                open_('{');
                kstr("newRoot", p->pivot_new);
                if (p->pivot_old)
                        kstr("oldRoot", p->pivot_old);
                close_('}');
        }
        dump_net(p);
        kbool("searchPath", p->search_path);
        kstrs("env", p->env, p->n_env);
        kstrs("stubEnv", p->stub_env, p->n_stub_env);
        kstrs("argv", p->argv, p->n_argv);
        key("fallback");
        open_('[');
        for (size_t i = 0; i < p->n_fallback; i++) {
                sep();
                open_('[');
                sep();
                js(p->fallback[i].path);
                sep();
                js(p->fallback[i].argv0);
                close_(']');
        }
        close_(']');
        kstrs("fallbackArgs", p->fallback_args, p->n_fallback_args);
        kbool("finalNewline", p->final_newline);
        if (p->win_cols) {
                key("consoleSize");
                open_('{');
                knum("width", p->win_cols);
                knum("height", p->win_rows);
                close_('}');
        }
        kbool("survive", p->survive);
        kstr("stdoutPath", p->stdout_path);
        if (p->sd_notify) {
                key("notify");
                open_('{');
                kbool("notifyReady", p->notify_ready);
                kbool("restartExits", p->restart_exits);
                close_('}');
        }
        dump_host_side(p);
        close_('}');
}

static void dump_exec_in(const ExecInRequest *r) {
        open_('{');
        knum("leader", r->leader);
        kstrs("command", r->command, r->n_command);
        kstrs("env", r->env, r->n_env);
        knum("uid", r->uid);
        knum("gid", r->gid);
        key("groups");
        open_('[');
        for (size_t i = 0; i < r->n_groups; i++) {
                sep();
                printf("\"%u\"", (unsigned) r->groups[i]);
        }
        close_(']');
        kstr("cwd", r->cwd);
        kstrs("cgroups", r->cgroups, r->n_cgroups);
        kbool("pty", r->pty);
        if (r->console_socket)
                knum("consoleSocketFd", (unsigned long long) (r->console_socket - 1));
        if (r->n_pass_fds) {
                key("passFds");
                open_('[');
                for (size_t i = 0; i < r->n_pass_fds; i++) {
                        sep();
                        printf("\"%d\"", r->pass_fds[i]);
                }
                close_(']');
        }
        if (r->bind) {
                key("bind");
                open_('{');
                kstr("source", r->bind_src);
                kstr("destination", r->bind_dst);
                kbool("readOnly", r->bind_ro);
                kbool("mkdir", r->bind_mkdir);
                close_('}');
        }
        close_('}');
}

int decode_main(void) {
        char err[2048];
        WireMessage m;
        int r = wire_read(STDIN_FILENO, 1, &m, err, sizeof err);
        if (r == 0)
                snprintf(err, sizeof err, "nothing on stdin");
        if (r <= 0) {
                fprintf(stderr, "nspawn-helper --decode: %s\n", err);
                return 2;
        }
        ExecInRequest x;
        MoveBackRequest mb;
        switch (m.kind) {
        case WIRE_KIND_PLAN:
                plan_decode_only = 1;
                r = plan_decode(&m, err, sizeof err);
                if (r == 0)
                        dump_plan(&plan);
                break;
        case WIRE_KIND_EXEC_IN:
                r = execin_request_decode(&m, &x, err, sizeof err);
                if (r == 0)
                        dump_exec_in(&x);
                break;
        case WIRE_KIND_MOVE_BACK:
                r = move_back_decode(&m, &mb, err, sizeof err);
                if (r == 0) {
                        open_('{');
                        kstrs("ifnames", mb.ifnames, mb.n);
                        close_('}');
                }
                break;
        default:
                snprintf(err, sizeof err, "a message of unknown kind %u", m.kind);
                r = -1;
        }
        if (r < 0) {
                fprintf(stderr, "nspawn-helper --decode: %s\n", err);
                return 2;
        }
        putchar('\n');
        return fflush(stdout) == 0 ? 0 : 1;
}
