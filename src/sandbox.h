/* A sandbox for scripts (Landlock): --script-read and --script-write. */
#ifndef FCGIWRAP_SANDBOX_H
#define FCGIWRAP_SANDBOX_H

#include <stddef.h>

/* Builds the rules from the options, once the daemon is in its --chroot.
 * Returns 0 (also when no option asks for a sandbox), or -1 with *why
 * when it cannot be had: fcgiwrap never runs scripts unconfined when told
 * to confine them. */
int sandbox_init(char *why, size_t size);

/* "Landlock ABI N: ..." or "none", for the log and the status page. */
const char *sandbox_describe(void);

/* In the new process, before exec: no_new_privs, then the rules.  System
 * calls only (it runs in a vfork child).  Returns 0, or -1 with errno. */
int sandbox_enter(void);

#endif
