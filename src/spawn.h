/* Starting a CGI script: its own process group, three pipes, a pidfd. */
#ifndef FCGIWRAP_SPAWN_H
#define FCGIWRAP_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct script_proc {
	pid_t pid;     /* also the process group id; 0 when none */
	int pidfd;     /* readable once the script has exited; -1 */
	int stdin_fd;  /* our ends, non-blocking and close-on-exec; -1 */
	int stdout_fd;
	int stderr_fd;
	bool reaped;
	int wait_status; /* from waitpid() once reaped */
};

void script_proc_init(struct script_proc *sp);

/* Notes which signals scripts must have reset to their defaults; call once
 * the daemon's own signal handling is set up. */
void spawn_init(void);

/* Starts filename with envp, in directory dir (NULL: stay), its stdin a
 * pipe of stdin_pipe_size bytes (0: the system's default).  Returns 0, or
 * an errno value with nothing left open or running and *failed_step
 * naming what failed ("exec", "chdir", "pipe", "fork", "setrlimit"...). */
int script_spawn(const char *filename, char *const envp[], const char *dir, int stdin_pipe_size,
		 struct script_proc *sp, const char **failed_step);

/* Reaps the script if it has exited; returns true once reaped. */
bool script_try_reap(struct script_proc *sp);

/* Ends the script's whole process group: SIGTERM, up to grace_ms for it
 * and its group to go, then SIGKILL; always reaps the script. */
void script_terminate(struct script_proc *sp, int grace_ms);

/* Closes our pipe ends and the pidfd (the process must be reaped). */
void script_proc_close(struct script_proc *sp);

/* exit code, or 128 + signal number for a script killed by a signal. */
int script_exit_code(int wait_status);

#endif
