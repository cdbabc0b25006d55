/* Upgrade in place (see upgrade.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "sandbox.h"
#include "sd_lazy.h"
#include "settings.h"
#include "upgrade.h"

/* How long the old copy waits for the new one to serve. */
#define UPGRADE_WAIT_MS 30000
#define ENV_FD "FCGIWRAP_UPGRADE_FD"

static char exe[PATH_MAX];      /* the binary's path, as at start */
static char **args;             /* the arguments, as at start */
static int channel = -1;        /* to the other copy */
static pid_t child = -1;        /* old copy: the new one, until it serves */
static pid_t unreaped = -1;     /* old copy: a new one ended, not reaped yet */
static long long give_up_at;    /* old copy: when it stops waiting */
static bool inherited, is_main = true;

void upgrade_init(int argc, char **argv)
{
	const char *fd_text = getenv(ENV_FD);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	static const char deleted[] = " (deleted)";

	/* A binary replaced on disk (a package upgrade renames the new one
	 * over it) shows as deleted: the path is what is started again. */
	exe[n > 0 ? n : 0] = '\0';
	if (n > (ssize_t)strlen(deleted) && strcmp(exe + n - strlen(deleted), deleted) == 0)
		exe[n - strlen(deleted)] = '\0';
	args = calloc((size_t)argc + 1, sizeof(char *));
	for (int i = 0; args && i < argc; i++)
		if (!(args[i] = strdup(argv[i])))
			fatalx("out of memory");
	if (!args)
		fatalx("out of memory");
	if (!fd_text)
		return;
	/* Started by an upgrade: the channel to the old copy.  Scripts must
	 * not inherit it. */
	{
		char *end;
		long fd = strtol(fd_text, &end, 10);
		struct stat st;
		if (*end || end == fd_text || fd < 3 || fd > INT_MAX || fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
			fatalx("%s=%s: not the channel of an upgrade", ENV_FD, fd_text);
		channel = (int)fd;
	}
	unsetenv(ENV_FD);
	inherited = true;
	is_main = false;
}

bool upgrade_inherited(void)
{
	return inherited;
}

bool upgrade_is_main(void)
{
	return is_main;
}

/* The environment of the new copy: this one's, with the sockets' and the
 * channel's variables in place of any there were.  LISTEN_PID is written
 * by the child, once it knows its pid, into the last entry's buffer. */
static char **new_environment(size_t n_fds, char *listen_pid, size_t size, size_t *made)
{
	extern char **environ;
	static const char *const drop[] = { "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", ENV_FD "=",
					    "WATCHDOG_PID=" };
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 5, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool keep = true;
		for (size_t d = 0; d < sizeof(drop) / sizeof(drop[0]); d++)
			keep = keep && strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
		if (keep)
			env[k++] = environ[i];
	}
	*made = k;
	/* The new copy inherits the seccomp filter (sandbox.c) and needs its
	 * key for its own clone3. */
	if (asprintf(&env[k], "LISTEN_FDS=%zu", n_fds) < 0)
		env[k] = NULL;
	if (asprintf(&env[k + 1], ENV_FD "=%zu", 3 + n_fds) < 0)
		env[k + 1] = NULL;
	if (asprintf(&env[k + 2], SANDBOX_KEY_ENV "=%llx", sandbox_clone3_key()) < 0)
		env[k + 2] = NULL;
	if (!env[k] || !env[k + 1] || !env[k + 2]) {
		for (size_t i = k; i < k + 3; i++)
			free(env[i]);
		free(env);
		return NULL;
	}
	k += 3;
	snprintf(listen_pid, size, "LISTEN_PID=");
	env[k++] = listen_pid;
	return env;
}

/* In the child of fork(), so async-signal-safe calls only: the sockets
 * to fds 3.., the channel after them, and the new binary. */
static _Noreturn void exec_new_copy(const int *fds, size_t n, int end, char **env, char *listen_pid)
{
	int moved[n + 1], err;
	sigset_t none;
	char digits[24];
	size_t len = 0, at = strlen(listen_pid);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of the way first (above every target), then into place;
	 * dup2() clears close-on-exec on the targets only. */
	for (size_t i = 0; i <= n; i++)
		if ((moved[i] = fcntl(i < n ? fds[i] : end, F_DUPFD_CLOEXEC, (int)n + 4)) < 0)
			_exit(127);
	for (size_t i = 0; i <= n; i++)
		if (dup2(moved[i], 3 + (int)i) < 0)
			_exit(127);
	for (pid_t pid = getpid(); pid > 0; pid /= 10)
		digits[len++] = (char)('0' + pid % 10);
	while (len > 0)
		listen_pid[at++] = digits[--len];
	listen_pid[at] = '\0';
	execve(exe, args, env);
	err = errno;
	{
		char report[1 + sizeof(err)] = { 'E' };
		memcpy(report + 1, &err, sizeof(err));
		if (write(3 + (int)n, report, sizeof(report)) < 0)
			_exit(127);
	}
	_exit(127);
}

int upgrade_start(const int *fds, size_t n)
{
	int pair[2] = { -1, -1 };
	char listen_pid[32], **env;
	size_t made;
	pid_t pid;

	if (channel >= 0) {
		log_warnx("SIGUSR2: %s", child > 0 ? "an upgrade is under way already" : "this copy has not taken over yet");
		return -1;
	}
	if (cfg.chroot_dir) {
		/* The binary and its libraries are outside the jail, and only
		 * root could enter it again. */
		log_warnx("SIGUSR2: no upgrade in place with --chroot; restart fcgiwrap instead");
		return -1;
	}
	if (!exe[0] || access(exe, X_OK) < 0) {
		log_warnx("SIGUSR2: cannot upgrade: %s: %s; still serving", exe[0] ? exe : "the binary's path is unknown",
			  strerror(errno));
		return -1;
	}
	env = new_environment(n, listen_pid, sizeof(listen_pid), &made);
	if (!env) {
		log_warnx("SIGUSR2: cannot upgrade: out of memory; still serving");
		return -1;
	}
	pid = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0 ? -1 : fork();
	if (pid == 0)
		exec_new_copy(fds, n, pair[1], env, listen_pid);
	free(env[made]);
	free(env[made + 1]);
	free(env[made + 2]);
	free(env);
	if (pid < 0) {
		log_warn("SIGUSR2: cannot start a new copy (still serving)");
		close(pair[0]);
		close(pair[1]);
		return -1;
	}
	close(pair[1]);
	channel = pair[0];
	child = pid;
	give_up_at = monotonic_ms() + UPGRADE_WAIT_MS;
	log_info("SIGUSR2: started %s (pid %d) on %zu socket(s); serving until it is ready", exe, (int)pid, n);
	return 0;
}

int upgrade_fd(void)
{
	return channel;
}

int upgrade_timeout_ms(void)
{
	long long left;

	if (child <= 0)
		return unreaped > 0 ? 1000 : -1;
	left = give_up_at - monotonic_ms();
	return left > 0 ? (int)left : 0;
}

/* Reaps an ended new copy, waiting at most 200 ms (one that takes longer,
 * stuck in the kernel, is reaped later: the main loop is not held).
 * Returns true with *status once reaped. */
static bool reap(pid_t pid, int *status)
{
	for (int i = 0; i < 200; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR)) {
			unreaped = -1;
			return r == pid;
		}
		poll(NULL, 0, 1);
	}
	unreaped = pid;
	return false;
}

/* Old copy: the new one did not come up; it is ended and reaped. */
static enum upgrade_event failed(const char *what)
{
	int status = 0;
	bool reaped;

	kill(child, SIGKILL);
	reaped = reap(child, &status);
	if (what)
		log_warnx("upgrade failed: the new copy (pid %d) %s; still serving", (int)child, what);
	else if (reaped && WIFEXITED(status))
		log_warnx("upgrade failed: the new copy (pid %d) exited with status %d before serving (its log lines "
			  "say why); still serving", (int)child, WEXITSTATUS(status));
	else
		log_warnx("upgrade failed: the new copy (pid %d) ended before serving (signal %d); still serving",
			  (int)child, reaped && WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	close(channel);
	channel = -1;
	child = -1;
	return UPGRADE_FAILED;
}

/* Old copy, on 'R': the new copy becomes the main process, if it is still
 * there to be. */
static enum upgrade_event hand_over(void)
{
	char state[32];
	int status;

	if (waitpid(child, &status, WNOHANG) != 0)
		return failed("ended just as it said it was serving");
	/* Named first, so that what the new copy sends once told is taken
	 * from the main process.  Should it be gone in between, this copy
	 * claims the role back (systemd may refuse: its main process died,
	 * and socket activation starts a new one) and keeps serving. */
	snprintf(state, sizeof(state), "MAINPID=%d", (int)child);
	sdl_notify(0, state);
	if (send(channel, "M", 1, MSG_NOSIGNAL) < 0) {
		snprintf(state, sizeof(state), "MAINPID=%d", (int)getpid());
		sdl_notify(0, state);
		return failed("closed its channel just as it said it was serving");
	}
	log_info("upgrade: the new copy (pid %d) serves; this one stops accepting and finishes its requests",
		 (int)child);
	close(channel);
	channel = -1;
	child = -1;
	return UPGRADE_HANDED_OVER;
}

enum upgrade_event upgrade_handle(void)
{
	char buf[1 + sizeof(int)];
	ssize_t got;
	int status;

	if (unreaped > 0 && child <= 0)
		reap(unreaped, &status);
	if (channel < 0)
		return UPGRADE_NOTHING;
	/* What was said first: a copy that said it serves just as its time
	 * ran out serves (and has accepted connections already). */
	do
		got = recv(channel, buf, sizeof(buf), MSG_DONTWAIT);
	while (got < 0 && errno == EINTR);
	if (got < 0 && errno == EAGAIN) {
		if (child > 0 && monotonic_ms() >= give_up_at)
			return failed("did not say it was serving within 30 s");
		return UPGRADE_NOTHING;
	}
	if (child <= 0) {
		/* New copy: the old one made it the main process ('M'), or is
		 * gone. */
		close(channel);
		channel = -1;
		is_main = true;
		return UPGRADE_TAKEN_OVER;
	}
	if (got >= 1 && buf[0] == 'R')
		return hand_over();
	if (got == (ssize_t)sizeof(buf) && buf[0] == 'E') {
		int err;
		char what[PATH_MAX + 64];
		memcpy(&err, buf + 1, sizeof(err));
		snprintf(what, sizeof(what), "could not execute %s: %s", exe, strerror(err));
		return failed(what);
	}
	return failed(NULL);
}

void upgrade_abort(void)
{
	if (child <= 0)
		return;
	/* SIGTERM, not SIGKILL: what it may have accepted already is
	 * served before it exits. */
	log_info("stopping: the upgrade under way is abandoned; the new copy (pid %d) stops too", (int)child);
	kill(child, SIGTERM);
	close(channel);
	channel = -1;
	child = -1;
}

void upgrade_serving(void)
{
	if (channel >= 0 && send(channel, "R", 1, MSG_NOSIGNAL) < 0) {
		/* The old copy is gone: this one is on its own. */
		close(channel);
		channel = -1;
		is_main = true;
	}
}
