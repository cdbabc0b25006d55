/* Logging to stderr.  Every message is formatted into one buffer, escaped
 * (escape.c) and written with a single writev(2), so lines from concurrent
 * requests never interleave mid-line and no message makes two lines. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "escape.h"
#include "log.h"

static enum log_level max_level = LOG_LEVEL_INFO;
static bool journal_prefix;

void log_init(void)
{
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal;
	 * that is when "<N>" prefixes are understood rather than printed. */
	journal_prefix = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOG_LEVEL_ERR },
		{ "warning", LOG_LEVEL_WARNING },
		{ "info", LOG_LEVEL_INFO },
		{ "debug", LOG_LEVEL_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(name, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -1;
}

__attribute__((format(printf, 3, 0)))
static void log_vwrite(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	/* The escaped copy is allocated, and only when there is something to
	 * escape: a 16 KiB buffer for the worst case here would deepen the
	 * stack of every worker thread that ever logs, and those pages stay
	 * resident. */
	char msg[4096], prefix[8] = "", *escaped = NULL;
	struct iovec iov[3];
	size_t need;
	int n;

	if (level > max_level)
		return;
	if (journal_prefix)
		snprintf(prefix, sizeof(prefix), "<%d>", (int)level);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (errnum) {
		char errbuf[128];
		const char *text = strerror_r(errnum, errbuf, sizeof(errbuf));
		int m = snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", text);
		if (m > 0)
			n += m;
		if ((size_t)n >= sizeof(msg))
			n = sizeof(msg) - 1;
	}
	/* One message, one line: whatever the message holds (a script's
	 * path or stderr, a request's parameters), control bytes cannot
	 * start another line or pick a journal priority. */
	iov[1] = (struct iovec){ msg, (size_t)n };
	need = escaped_length(msg, (size_t)n, NULL);
	if (need > (size_t)n) {
		if ((escaped = malloc(need + 1)))
			iov[1] = (struct iovec){ escaped, escape_bytes(escaped, need + 1, msg, (size_t)n, NULL) };
		else
			for (int i = 0; i < n; i++)  /* no memory: no control byte either */
				if (escaped_length(msg + i, 1, NULL) > 1)
					msg[i] = '?';
	}
	iov[0] = (struct iovec){ prefix, strlen(prefix) };
	iov[2] = (struct iovec){ "\n", 1 };
	/* A short write to stderr is not worth a retry loop: logging must
	 * never block or fail a request. */
	ssize_t rc = writev(STDERR_FILENO, iov, 3);
	(void)rc;
	free(escaped);
}

#define LOG_FN(name, level, with_errno)                   \
	void name(const char *fmt, ...)                   \
	{                                                 \
		int saved = errno;                        \
		va_list ap;                               \
		va_start(ap, fmt);                        \
		log_vwrite(level, with_errno ? saved : 0, fmt, ap); \
		va_end(ap);                               \
		errno = saved;                            \
	}

LOG_FN(log_warn, LOG_LEVEL_WARNING, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARNING, 0)
LOG_FN(log_err, LOG_LEVEL_ERR, 1)
LOG_FN(log_errx, LOG_LEVEL_ERR, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)


void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
