/* The spawn floor: how many times per second this machine can start a CGI
 * program and read its whole output, with no FastCGI, no web server and no
 * gateway, using as many threads as there are cores.  A gateway cannot do
 * better than this; bench.py compares fcgiwrap with it.
 * Usage: spawn_floor PROGRAM [SECONDS] [THREADS] */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *program;
static atomic_int stop;
static atomic_long done;

static void *spawner(void *arg)
{
	char *const argv[] = { (char *)program, NULL };
	char buf[65536];

	(void)arg;
	while (!atomic_load(&stop)) {
		posix_spawn_file_actions_t fa;
		int out[2];
		pid_t pid;
		if (pipe(out) < 0)
			return NULL;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		posix_spawn_file_actions_addclose(&fa, out[0]);
		if (posix_spawn(&pid, program, &fa, NULL, argv, environ) != 0) {
			perror("posix_spawn");
			exit(1);
		}
		posix_spawn_file_actions_destroy(&fa);
		close(out[1]);
		while (read(out[0], buf, sizeof(buf)) > 0)
			;
		close(out[0]);
		waitpid(pid, NULL, 0);
		atomic_fetch_add(&done, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = argc > 2 ? atof(argv[2]) : 5;
	long threads = argc > 3 ? atol(argv[3]) : sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t *t;
	struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };

	if (argc < 2) {
		fprintf(stderr, "usage: spawn_floor PROGRAM [SECONDS] [THREADS]\n");
		return 2;
	}
	program = argv[1];
	t = calloc((size_t)threads, sizeof(*t));
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, spawner, NULL);
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (long i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("%.1f\n", atomic_load(&done) / seconds);
	return 0;
}
