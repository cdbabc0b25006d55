/* A sandbox for scripts (Landlock): their isolation from the daemon, from
 * each other and from their cgroups, and --script-read and --script-write. */
#ifndef FCGIWRAP_SANDBOX_H
#define FCGIWRAP_SANDBOX_H

#include <stddef.h>

/* Builds the rules from the options, once the daemon is in its --chroot:
 * the default isolation, or --script-read and --script-write; no script
 * may write below cgroup2 mounts and cgroup_dir (the daemon's cgroups,
 * or NULL), nor start a process into a cgroup (clone3).  Returns 0
 * (*gaps then says what of the isolation this kernel or the options
 * leave out, "" for nothing), or -1 with *why when a sandbox asked for
 * cannot be had: fcgiwrap never runs scripts unconfined when told to
 * confine them. */
int sandbox_init(const char *cgroup_dir, char *gaps, size_t gaps_size, char *why, size_t size);

/* "Landlock ABI N: ..." or "none", for the log and the status page. */
const char *sandbox_describe(void);

/* In the new process, before exec: no_new_privs, then the rules.  System
 * calls only (it runs in a vfork child).  Returns 0, or -1 with errno. */
int sandbox_enter(void);

/* The fd sandbox_enter() uses, or -1. */
int sandbox_fd(void);

/* Early in main(): the key of the clone3 filter an upgraded copy inherits
 * from the copy that started it, taken out of the environment. */
void sandbox_take_inherited_key(void);

/* Once the sandbox is made, before any thread: a seccomp filter on the
 * daemon, inherited by every script, that refuses clone3 without the
 * daemon's key (scripts cannot then start processes into other cgroups).
 * Returns 0, or -1 with *why. */
int sandbox_guard_daemon(char *why, size_t size);

/* The key clone3 must carry in its third argument register, 0 when no
 * filter asks for one. */
unsigned long long sandbox_clone3_key(void);

/* The variable that hands the key to the copy an upgrade starts. */
#define SANDBOX_KEY_ENV "FCGIWRAP_CLONE3_KEY"

#endif
