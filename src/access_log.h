/* The access log: one line per request (--access-log, --access-format). */
#ifndef FCGIWRAP_ACCESS_LOG_H
#define FCGIWRAP_ACCESS_LOG_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define ACCESS_FORMAT_DEFAULT "%a [%t] \"%m %u\" %S %I %O %Dms %s exit=%x pid=%p cpu=%Cms mem=%MKiB"

struct access_entry {
	const char *peer, *method, *uri, *script; /* NULL prints "-" */
	int status;                /* sent to the web server; 0: none */
	unsigned long long bytes_in, bytes_out;
	long long duration_ms;
	int exit_status;           /* wait status, or -1 without a script */
	pid_t pid;                 /* 0 without a script */
	long long cpu_ms;          /* the script's CPU time, -1 without one */
	long long memory_kib;      /* its peak memory, -1 without one */
};

/* Formats e by fmt into buf (always NUL-terminated, cut to size) and adds
 * a newline.  Pure.  Returns the length. */
size_t access_format(char *buf, size_t size, const char *fmt, const struct access_entry *e, time_t now);

/* Opens path ("-" for standard output) for appending: a regular file
 * with one link, not through a final symlink.  owner and group: the user
 * the daemon will run as, to whom a file created here is given
 * ((uid_t)-1: none).  Returns 0, 1 if the file exists and owner cannot
 * write it (SIGHUP will not reopen it), or -1 with *why. */
int access_log_open(const char *path, const char *format, uid_t owner, gid_t group, char *why, size_t size);

/* Opens the file again, with the same checks, under the same fd (SIGHUP,
 * after log rotation).  Returns 0, or -1 with *why. */
int access_log_reopen(char *why, size_t size);

/* Writes one line, if an access log is open. */
void access_log_write(const struct access_entry *e);

#endif
