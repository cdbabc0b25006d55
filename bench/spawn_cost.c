/* What starting a CGI program costs the process that starts it: fork() +
 * exec, posix_spawn() (clone with CLONE_VM | CLONE_VFORK in glibc) and
 * vfork() + exec (what fcgiwrap does),
 * from a process whose memory is the size given (MiB, touched), counting
 * only the parent's CPU time (getrusage RUSAGE_SELF).
 * Usage: spawn_cost PROGRAM [ITERATIONS] [MIB] */
#include <spawn.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	const char *prog = argc > 1 ? argv[1] : "/bin/true";
	int n = argc > 2 ? atoi(argv[2]) : 2000;
	size_t mib = argc > 3 ? (size_t)atoi(argv[3]) : 8;
	char *const args[] = { (char *)prog, NULL };
	char *mem = malloc(mib << 20);
	double t0, fork_cpu, spawn_cpu, vfork_cpu;

	memset(mem, 1, mib << 20); /* resident, as a daemon's heap is */
	t0 = cpu_now();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			int fd = open("/dev/null", 1);
			dup2(fd, 1);
			execve(prog, args, environ);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	fork_cpu = (cpu_now() - t0) / n * 1e6;
	t0 = cpu_now();
	for (int i = 0; i < n; i++) {
		posix_spawn_file_actions_t fa;
		pid_t pid;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
		posix_spawn(&pid, prog, &fa, NULL, args, environ);
		posix_spawn_file_actions_destroy(&fa);
		waitpid(pid, NULL, 0);
	}
	spawn_cpu = (cpu_now() - t0) / n * 1e6;
	t0 = cpu_now();
	for (int i = 0; i < n; i++) {
		pid_t pid = vfork();
		if (pid == 0) {
			int fd = open("/dev/null", 1);
			dup2(fd, 1);
			execve(prog, args, environ);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	vfork_cpu = (cpu_now() - t0) / n * 1e6;
	printf("parent CPU per start, %zu MiB resident: fork+exec %.1f us, posix_spawn %.1f us (%.2fx), "
	       "vfork+exec %.1f us (%.2fx)\n",
	       mib, fork_cpu, spawn_cpu, spawn_cpu / fork_cpu, vfork_cpu, vfork_cpu / fork_cpu);
	return 0;
}
