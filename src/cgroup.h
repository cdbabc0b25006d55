/* Scripts in cgroups of their own (cgroup v2): every process a script
 * starts, setsid'd and double-forked ones included, stays in its cgroup,
 * where it can be limited, counted, and ended. */
#ifndef FCGIWRAP_CGROUP_H
#define FCGIWRAP_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

/* What a script used, from its cgroup. */
struct cgroup_usage {
	unsigned long long cpu_usec;  /* user + system, every process */
	long long memory_peak_kib;    /* -1: no memory controller */
	unsigned long long oom_kills; /* by --script-memory-max */
	unsigned long long pids_max;  /* forks refused by --script-pids-max */
};

struct script_cgroup; /* one cgroup, for one script at a time */

/* Finds the subtree to manage (--cgroup DIR, or the daemon's own cgroup
 * when systemd delegated it), moves the daemon out of the way, enables
 * the controllers the limits need, and sets them up.  Returns 1 when
 * scripts get cgroups, 0 when process groups are all there is (*why says
 * why, for the log), -1 when an option cannot be honoured (fatal; *why). */
int cgroups_init(char *why, size_t size);

/* "cgroup DIR" or "process groups", for the log and the status page. */
const char *cgroups_containment(void);
bool cgroups_on(void);

/* The subtree's directory, or NULL when scripts are not in cgroups. */
const char *cgroups_dir(void);

/* A cgroup for a script about to start (reused, or made now), or NULL
 * when scripts are not in cgroups (or one cannot be made: logged). */
struct script_cgroup *cgroup_take(void);

/* An fd of the cgroup's directory, to start a process in (clone3's
 * CLONE_INTO_CGROUP, or its cgroup.procs).  -1 with errno on failure. */
int cgroup_open(struct script_cgroup *cg);

/* Sends sig to every process in the cgroup, frozen meanwhile so that none
 * can exit or fork between the list and the signal. */
void cgroup_signal_all(struct script_cgroup *cg, int sig);

/* Waits until no process is left in the cgroup, at most until the
 * monotonic ms deadline.  Returns true once empty. */
bool cgroup_wait_empty(struct script_cgroup *cg, long long deadline);

/* SIGKILL to every process in the cgroup (cgroup.kill). */
void cgroup_kill(struct script_cgroup *cg);

/* What the cgroup's processes used since cgroup_take(). */
void cgroup_usage(struct script_cgroup *cg, struct cgroup_usage *u);

/* The script's request has ended: the cgroup goes back to the pool, or,
 * with processes left in it, stays as it is (--leftovers=keep) until they
 * are gone, or they are killed first (--leftovers=kill).  Returns the
 * number of processes left and kept. */
unsigned cgroup_release(struct script_cgroup *cg);

/* Removes the cgroups of kept leftovers that have emptied.  Returns how
 * many still hold processes. */
unsigned cgroups_reap_leftovers(void);

/* How many cgroups are kept for leftovers now. */
unsigned cgroups_leftovers(void);

/* Takes in the cgroups that a daemon that is gone left in the subtree
 * (their processes are then counted, reaped and ended as kept leftovers
 * of this one).  Cheap: one read of the subtree's directory. */
void cgroups_adopt_orphans(void);

/* At the daemon's exit: ends what leftovers remain and removes the
 * cgroups; hand_over (after an upgrade) keeps the leftovers, which the
 * new copy adopts. */
void cgroups_shutdown(bool hand_over);

#endif
