/* Access log.  Each line is written with one write(2) to a file opened
 * O_APPEND, so lines from concurrent requests never mix; reopening dup2()s
 * the new file onto the same fd, so writers never see a closed one. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_log.h"
#include "escape.h"

static int log_fd = -1;
static const char *log_path;
static const char *log_format = ACCESS_FORMAT_DEFAULT;

static size_t put(char *buf, size_t size, size_t pos, const char *s)
{
	size_t n = strlen(s);
	if (pos + n >= size)
		n = pos < size - 1 ? size - 1 - pos : 0;
	memcpy(buf + pos, s, n);
	return pos + n;
}

/* A field that comes from the request: control bytes, DEL, the backslash
 * and the double quote (the default format quotes the request) escaped
 * as \xHH, as nginx does in its own access log. */
static size_t put_field(char *buf, size_t size, size_t pos, const char *s)
{
	if (pos >= size - 1)
		return pos;
	return pos + escape_bytes(buf + pos, size - pos, s, strlen(s), "\"");
}

/* %a, %m, %u and %s: the fields that come from the request, "-" when
 * absent.  NULL for any other directive. */
static const char *request_field(char c, const struct access_entry *e)
{
	const char *s;

	switch (c) {
	case 'a': s = e->peer; break;
	case 'm': s = e->method; break;
	case 'u': s = e->uri; break;
	case 's': s = e->script; break;
	default: return NULL;
	}
	return s ? s : "-";
}

/* v printed into tmp, or "-" for a figure the request does not have. */
static const char *number_or_dash(char *tmp, size_t size, long long v, bool known)
{
	if (!known)
		return "-";
	snprintf(tmp, size, "%lld", v);
	return tmp;
}

/* %x: how the script ended, from its wait status. */
static const char *exit_text(char *tmp, size_t size, int status)
{
	if (status < 0)
		return "-";
	if (WIFSIGNALED(status))
		snprintf(tmp, size, "sig%d", WTERMSIG(status));
	else
		snprintf(tmp, size, "%d", WEXITSTATUS(status));
	return tmp;
}

/* The text of directive c (any but the request's fields), printed into
 * tmp or a constant. */
static const char *directive_text(char c, const struct access_entry *e, time_t now, char *tmp, size_t size)
{
	struct tm tm;

	switch (c) {
	case 't':
		localtime_r(&now, &tm);
		strftime(tmp, size, "%d/%b/%Y:%H:%M:%S %z", &tm);
		return tmp;
	case 'S': return number_or_dash(tmp, size, e->status, e->status != 0);
	case 'I': snprintf(tmp, size, "%llu", e->bytes_in); return tmp;
	case 'O': snprintf(tmp, size, "%llu", e->bytes_out); return tmp;
	case 'D': snprintf(tmp, size, "%lld", e->duration_ms); return tmp;
	case 'x': return exit_text(tmp, size, e->exit_status);
	case 'C': return number_or_dash(tmp, size, e->cpu_ms, e->cpu_ms >= 0);
	case 'M': return number_or_dash(tmp, size, e->memory_kib, e->memory_kib >= 0);
	case 'p': return number_or_dash(tmp, size, (int)e->pid, e->pid != 0);
	case '%': return "%";
	default:
		/* Unknown: printed as it is, so a typo shows. */
		tmp[0] = '%';
		tmp[1] = c;
		tmp[2] = '\0';
		return tmp;
	}
}

size_t access_format(char *buf, size_t size, const char *fmt, const struct access_entry *e, time_t now)
{
	size_t pos = 0;
	char tmp[64];

	if (size < 2)
		return 0;
	for (const char *f = fmt; *f && pos < size - 2; f++) {
		const char *s;
		if (*f != '%' || !f[1]) {
			buf[pos++] = *f;
			continue;
		}
		f++;
		if ((s = request_field(*f, e)))
			pos = put_field(buf, size - 1, pos, s);
		else
			pos = put(buf, size - 1, pos, directive_text(*f, e, now, tmp, sizeof(tmp)));
	}
	buf[pos++] = '\n';
	buf[pos] = '\0';
	return pos;
}

/* Opens the log file for appending.  Started as root, the file's
 * directory may be the run user's: a symlink put there would make root
 * append to, or create, whatever it names (nginx's CVE-2016-1247), so a
 * final symlink is refused (O_NOFOLLOW), and so is anything but a regular
 * file with one link (a FIFO would hang the open and every write, a
 * device would be written to, a hard link would be another file's).
 * O_NONBLOCK makes a FIFO fail the open rather than wait for a reader.
 * Returns the fd with *st, or -1 with *why (and errno, when open failed). */
static int open_log_file(const char *path, int flags, struct stat *st, char *why, size_t size)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | flags, 0640);
	int err = errno;

	if (fd < 0) {
		if (err == ELOOP)
			snprintf(why, size, "a symbolic link (name the file itself)");
		else if (err == EISDIR || err == ENXIO)
			snprintf(why, size, "not a regular file");
		else
			snprintf(why, size, "%s", strerror(err));
		errno = err;
		return -1;
	}
	if (fstat(fd, st) < 0 || fcntl(fd, F_SETFL, O_APPEND) < 0) {
		snprintf(why, size, "%s", strerror(errno));
	} else if (!S_ISREG(st->st_mode)) {
		snprintf(why, size, "not a regular file");
	} else if (st->st_nlink > 1) {
		snprintf(why, size, "has other hard links");
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

/* Standard output is whatever the daemon's starter made it. */
static int open_path(const char *path, char *why, size_t size)
{
	struct stat st;
	int fd;

	if (strcmp(path, "-") != 0)
		return open_log_file(path, O_CREAT, &st, why, size);
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		snprintf(why, size, "%s", strerror(errno));
	return fd;
}

int access_log_open(const char *path, const char *format, uid_t owner, gid_t group, char *why, size_t size)
{
	struct stat st;

	log_path = path;
	if (format)
		log_format = format;
	if (strcmp(path, "-") == 0 || owner == (uid_t)-1) {
		log_fd = open_path(path, why, size);
		return log_fd < 0 ? -1 : 0;
	}
	/* Opened as root for a daemon that will run as owner: a file
	 * created now is given to owner, so that the reopen on SIGHUP, done
	 * as owner, can open it again.  A file that exists is left as it is
	 * (it may be a mistake to hand it over). */
	log_fd = open_log_file(path, O_CREAT | O_EXCL, &st, why, size);
	if (log_fd >= 0) {
		if (fchown(log_fd, owner, group) == 0)
			return 0;
		snprintf(why, size, "%s", strerror(errno));
		return -1;
	}
	if (errno != EEXIST)
		return -1;
	log_fd = open_log_file(path, 0, &st, why, size);
	if (log_fd < 0)
		return -1;
	return st.st_uid == owner || (st.st_mode & S_IWOTH) || (st.st_gid == group && (st.st_mode & S_IWGRP)) ? 0 : 1;
}

int access_log_reopen(char *why, size_t size)
{
	int fd;

	if (log_fd < 0 || strcmp(log_path, "-") == 0)
		return 0;
	/* The same checks as at start: with --allow-root this runs as root. */
	fd = open_path(log_path, why, size);
	if (fd < 0)
		return -1;
	/* dup2 swaps the file under the fd atomically; it keeps FD_CLOEXEC
	 * off, so set it again. */
	if (dup2(fd, log_fd) < 0 || fcntl(log_fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(why, size, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void access_log_write(const struct access_entry *e)
{
	char line[2048];
	size_t n;
	ssize_t rc;

	if (log_fd < 0)
		return;
	n = access_format(line, sizeof(line), log_format, e, time(NULL));
	rc = write(log_fd, line, n);
	(void)rc; /* a full disk must not fail the request */
}
