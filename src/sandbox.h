/* A sandbox for scripts (Landlock): their isolation from the daemon, from
 * each other and from their cgroups, and --script-read and --script-write. */
#ifndef FCGIWRAP_SANDBOX_H
#define FCGIWRAP_SANDBOX_H

#include <stddef.h>

/* Builds the rules from the options, once the daemon is in its --chroot:
 * the default isolation, or --script-read and --script-write.  Returns 0
 * (*gaps then says what of the isolation this kernel or the options
 * leave out, "" for nothing), or -1 with *why when a sandbox asked for
 * cannot be had: fcgiwrap never runs scripts unconfined when told to
 * confine them. */
int sandbox_init(char *gaps, size_t gaps_size, char *why, size_t size);

/* "Landlock ABI N: ..." or "none", for the log and the status page. */
const char *sandbox_describe(void);

/* In the new process, before exec: no_new_privs, then the rules.  System
 * calls only (it runs in a vfork child).  Returns 0, or -1 with errno. */
int sandbox_enter(void);

#endif
