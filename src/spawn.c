/* Script processes.
 *
 * posix_spawn() is used rather than fork(): glibc implements it with
 * clone(CLONE_VM | CLONE_VFORK), so the daemon's memory is never copied,
 * and it reports a failed exec (or chdir) as an errno value to the parent.
 * The child gets its own process group (so the whole group can be
 * signalled), SIGPIPE back to its default and an empty signal mask (the
 * daemon ignores SIGPIPE and blocks the signals it reads via signalfd; both
 * would otherwise be inherited), and nothing but fds 0, 1 and 2. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

void script_proc_init(struct script_proc *sp)
{
	sp->pid = 0;
	sp->pidfd = sp->stdin_fd = sp->stdout_fd = sp->stderr_fd = -1;
	sp->reaped = false;
	sp->wait_status = 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int script_spawn(const char *filename, char *const envp[], const char *dir, struct script_proc *sp)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *const argv[] = { (char *)filename, NULL };
	sigset_t none, dfl;
	int rc;

	script_proc_init(sp);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		rc = errno;
		goto fail;
	}
	/* Only our ends are non-blocking; the script sees ordinary pipes. */
	if (fcntl(in[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(err[0], F_SETFL, O_NONBLOCK) < 0) {
		rc = errno;
		goto fail;
	}

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	if (dir)
		posix_spawn_file_actions_addchdir_np(&fa, dir);
	/* Belt and braces: every fd of ours is close-on-exec already. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);

	sigemptyset(&none);
	/* Only what the daemon ignores needs resetting: glibc resets caught
	 * signals itself, and each signal in this set costs a system call
	 * while the daemon waits for the exec. */
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);

	rc = posix_spawn(&sp->pid, filename, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		sp->pid = 0;
		goto fail;
	}
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	sp->stdin_fd = in[1];
	sp->stdout_fd = out[0];
	sp->stderr_fd = err[0];
	/* The pid cannot be reused before we reap it, so this is race-free. */
	sp->pidfd = pidfd_open(sp->pid, 0);
	if (sp->pidfd < 0) {
		rc = errno;
		script_terminate(sp, 0);
		script_proc_close(sp);
		return rc;
	}
	return 0;

fail:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	return rc;
}

bool script_try_reap(struct script_proc *sp)
{
	pid_t r;

	if (sp->reaped || sp->pid <= 0)
		return true;
	do
		r = waitpid(sp->pid, &sp->wait_status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == sp->pid || (r < 0 && errno == ECHILD))
		sp->reaped = true;
	return sp->reaped;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void script_terminate(struct script_proc *sp, int grace_ms)
{
	long long deadline = now_ms() + grace_ms;

	if (sp->pid <= 0)
		return;
	kill(-sp->pid, SIGTERM);
	/* SIGTERM may be caught; a stopped process would never see it. */
	kill(-sp->pid, SIGCONT);
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		if (!script_try_reap(sp)) {
			struct pollfd pfd = { .fd = sp->pidfd, .events = POLLIN };
			if (sp->pidfd >= 0)
				poll(&pfd, 1, left > 50 ? 50 : (int)left);
			else
				poll(NULL, 0, 10);
			continue;
		}
		/* The script is gone; wait for the rest of its group too. */
		if (kill(-sp->pid, 0) < 0 && errno == ESRCH)
			return;
		poll(NULL, 0, left > 20 ? 20 : (int)left);
	}
	kill(-sp->pid, SIGKILL);
	while (!sp->reaped) {
		if (waitpid(sp->pid, &sp->wait_status, 0) == sp->pid || errno == ECHILD)
			sp->reaped = true;
	}
}

void script_proc_close(struct script_proc *sp)
{
	close_fd(&sp->stdin_fd);
	close_fd(&sp->stdout_fd);
	close_fd(&sp->stderr_fd);
	close_fd(&sp->pidfd);
}

int script_exit_code(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return 255;
}
