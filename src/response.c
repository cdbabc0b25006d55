/* What goes back to the web server (see response.h).
 *
 * Output is encoded by fcgi_out, which holds it until FCGI_STDIN has ended
 * (nginx stops sending the body once response bytes arrive).  A script's
 * header block is checked whole before any of it leaves: a bad one is a
 * 502 with a log line, never half a response. */
#include "config.h"

#include <fastcgi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "response.h"
#include "settings.h"

/* A script's stderr line longer than this is logged in pieces. */
#define STDERR_LINE_MAX 2048

static void log_stderr_line(struct request *r, const char *line, size_t len)
{
	log_warnx("%s: %.*s", r->label, (int)len, line);
}

/* Script stderr without -f: one log line per line the script wrote. */
static void stderr_to_log(struct request *r, const char *data, size_t len)
{
	if (!r->errline) {
		r->errline = malloc(STDERR_LINE_MAX);
		if (!r->errline)
			return;
	}
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (take > STDERR_LINE_MAX - r->errline_len)
			take = STDERR_LINE_MAX - r->errline_len;
		memcpy(r->errline + r->errline_len, data, take);
		r->errline_len += take;
		data += take;
		len -= take;
		if (len > 0 && *data == '\n') {
			data++;
			len--;
			log_stderr_line(r, r->errline, r->errline_len);
			r->errline_len = 0;
		} else if (r->errline_len == STDERR_LINE_MAX) {
			log_stderr_line(r, r->errline, r->errline_len);
			r->errline_len = 0;
		}
	}
}

void response_stderr_ended(struct request *r)
{
	if (r->errline_len > 0)
		log_stderr_line(r, r->errline, r->errline_len);
	r->errline_len = 0;
}

int response_stderr(struct request *r, const char *data, size_t len)
{
	if (cfg.stderr_to_fastcgi)
		return fcgi_out_stream(&r->out, FCGI_STDERR, data, len);
	stderr_to_log(r, data, len);
	return 0;
}

/* The script broke the CGI header rules: it is ended, its remaining output
 * dropped, and the client will get a 502 once the body has been read. */
static void headers_failed(struct request *r)
{
	r->hstate = HDR_FAILED;
	log_warnx("%s: bad CGI response: %s", r->label, r->hdr.error);
	script_terminate(&r->proc, cfg.kill_grace_ms);
	/* What the script wrote to stderr before it ended usually says why
	 * its output was wrong: pass on what the pipe holds before closing. */
	if (r->proc.stderr_fd >= 0) {
		ssize_t n;
		while ((n = read(r->proc.stderr_fd, r->wb->io, WB_IO_SIZE)) > 0)
			response_stderr(r, r->wb->io, (size_t)n);
		response_stderr_ended(r);
	}
	script_proc_close(&r->proc);
}

int response_stdout(struct request *r, const char *data, size_t len)
{
	if (r->hstate == HDR_PARSING) {
		size_t used;
		switch (cgi_header_feed(&r->hdr, data, len, &used)) {
		case CGI_HEADER_MORE:
			return 0;
		case CGI_HEADER_ERROR:
			headers_failed(r);
			return 0;
		case CGI_HEADER_DONE: {
			/* The header and the body bytes read with it go out
			 * together: one record and one sendmsg for a small
			 * response. */
			struct iovec parts[2] = { { .iov_base = r->hdr.out, .iov_len = r->hdr.out_len },
						  { .iov_base = (char *)data + used, .iov_len = len - used } };
			r->hstate = HDR_DONE;
			r->status = r->hdr.status;
			return fcgi_out_streamv(&r->out, FCGI_STDOUT, parts, 2);
		}
		}
	}
	if (r->hstate == HDR_DONE && len > 0)
		return fcgi_out_stream(&r->out, FCGI_STDOUT, data, len);
	return 0;
}

void response_stdout_ended(struct request *r)
{
	if (r->hstate != HDR_PARSING)
		return;
	cgi_header_eof(&r->hdr);
	headers_failed(r);
}

int response_release(struct request *r)
{
	return fcgi_out_release(&r->out, r->wb->io, WB_IO_SIZE);
}
