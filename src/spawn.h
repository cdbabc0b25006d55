/* Starting a CGI script: its own process group, three pipes. */
#ifndef FCGIWRAP_SPAWN_H
#define FCGIWRAP_SPAWN_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "fd.h"
#include "rlimit_spec.h"

struct script_proc {
	pid_t pid;     /* also the process group id; 0 when none */
	int pidfd;     /* readable once the script has exited; -1 until
			* script_pidfd() opens it */
	int stdin_fd;  /* our ends, non-blocking and close-on-exec; -1 */
	int stdout_fd;
	int stderr_fd;
	struct script_cgroup *cgroup; /* the script's cgroup, or NULL */
	struct rusage usage; /* the script's, and its waited-for children's,
			      * once reaped */
	bool exited;     /* the script has exited: wait_status says how */
	bool reaped;     /* and its zombie is gone: its pid, which is its
			  * process group's id, may belong to another now */
	int wait_status;
};

void script_proc_init(struct script_proc *sp);

/* Notes which signals scripts must have reset to their defaults; call once
 * the daemon's own signal handling is set up. */
void spawn_init(void);

struct script_cgroup;

/* What to start, and how. */
struct script_start {
	const char *path;       /* the script, also its argv[0] */
	const char *interpreter; /* runs it as "interpreter path", or NULL */
	int fd;                 /* an O_PATH fd of the file that was checked,
				 * run rather than path; -1: run path */
	dev_t dev;              /* that file's identity, which path must */
	ino_t ino;              /* still have when it is run by path */
	char *const *envp;
	const char *dir;        /* where it runs; NULL: stay */
	int cgroup_dir_fd;      /* its cgroup (a directory fd), or -1 */
	struct script_cgroup *cgroup; /* that cgroup, the script's once it
				       * has started (sp->cgroup) */
	int stdin_pipe_size;    /* 0: the system's default */
	bool stdin_empty;       /* the request's body has ended, empty: the
				 * script's stdin is /dev/null, not a pipe */
	const struct rlimit_setting *rlimits; /* --rlimit, set in the new process */
	size_t n_rlimits;
};

/* Starts a script.  Returns 0, or an errno value with nothing left open or
 * running and *failed_step naming what failed ("exec", "chdir", "pipe",
 * "fork", "setrlimit"...). */
int script_spawn(const struct script_start *st, struct script_proc *sp, const char **failed_step);

/* Whether the script has exited (wait_status then says how).  Its zombie
 * is kept until script_reap(): while it is there, no new process can take
 * its pid, the id of its process group, so the group can still be
 * signalled without hitting another script's. */
bool script_exited(struct script_proc *sp);

/* The script's pidfd, readable once it has exited, opened on the first
 * call (a start gives none: most scripts are seen to end without it);
 * -1 if it cannot be opened, or the script is reaped. */
int script_pidfd(struct script_proc *sp);

/* Ends the script's whole process group, or with a cgroup all that is in
 * it, and the script itself wherever it went: SIGTERM, up to grace_ms for
 * the script and the rest to go, then SIGKILL and up to a second more.
 * Bounded whatever the script does.  Does nothing once the script has
 * been reaped. */
void script_end_group(struct script_proc *sp, int grace_ms);

/* Reaps the script, which has exited (script_exited() or
 * script_end_group()); its group is never signalled after.  Never blocks:
 * a script still running is left to scripts_reap_abandoned(), its exit
 * status unknown (exited stays false). */
void script_reap(struct script_proc *sp);

/* Reaps the scripts that outlived their requests and have exited since.
 * Returns how many are still running.  Called by the main loop. */
unsigned scripts_reap_abandoned(void);

/* How many scripts outlived their requests and are not reaped yet. */
unsigned scripts_abandoned(void);

/* At the daemon's stop: SIGKILL to those scripts and their groups. */
void scripts_end_abandoned(void);

/* The CPU time the script has used so far (its cgroup's, or the
 * script's and its waited-for children's), in microseconds; -1 if not
 * known. */
long long script_cpu_usec(struct script_proc *sp);

/* What a script used, measured by script_finish(). */
struct script_usage {
	long long cpu_usec;      /* -1: not known */
	long long memory_kib;    /* peak; -1: not known */
	unsigned long long oom_kills;     /* by --script-memory-max */
	unsigned long long forks_refused; /* by --script-pids-max */
	unsigned left_running;   /* processes kept in its cgroup (--leftovers keep) */
};

/* The end of a script, whatever ended its request: its whole group ended
 * first if end_group (script_end_group()), then it is reaped
 * (script_reap()), measured (from its cgroup: every process it started;
 * else from its exit: itself and the children it waited for), and its
 * cgroup given back, or kept for what it left running. */
void script_finish(struct script_proc *sp, bool end_group, int grace_ms, struct script_usage *u);

/* Whether the script is running or ready to run on a CPU now (state R),
 * rather than waiting for something (a child, a timer, I/O). */
bool script_on_cpu(struct script_proc *sp);

/* Closes our pipe ends and the pidfd (the process must be reaped). */
void script_proc_close(struct script_proc *sp);

/* exit code, or 128 + signal number for a script killed by a signal. */
int script_exit_code(int wait_status);

#endif
