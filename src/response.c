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

/* A script's stderr line longer than this is logged in pieces. */
#define STDERR_LINE_MAX 2048

void response_init(struct response *o, const struct response_setup *setup)
{
	memset(o, 0, sizeof(*o));
	o->set = *setup;
	fcgi_out_init(&o->out, setup->fd, setup->id, setup->wait);
	o->out.spool_max = setup->spool_max;
	cgi_header_init(&o->hdr);
	o->hstate = HDR_PARSING;
	o->label = "(unknown script)";
}

void response_free(struct response *o)
{
	fcgi_out_free(&o->out);
	cgi_header_free(&o->hdr);
	free(o->errline);
	o->errline = NULL;
	o->errline_len = 0;
}

void response_name(struct response *o, const char *label)
{
	o->label = label;
}

static void log_stderr_line(struct response *o, const char *line, size_t len)
{
	log_warnx("%s: %.*s", o->label, (int)len, line);
}

/* Script stderr without -f: one log line per line the script wrote. */
static void stderr_to_log(struct response *o, const char *data, size_t len)
{
	if (!o->errline) {
		o->errline = malloc(STDERR_LINE_MAX);
		if (!o->errline)
			return;
	}
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (take > STDERR_LINE_MAX - o->errline_len)
			take = STDERR_LINE_MAX - o->errline_len;
		memcpy(o->errline + o->errline_len, data, take);
		o->errline_len += take;
		data += take;
		len -= take;
		if (len > 0 && *data == '\n') {
			data++;
			len--;
			log_stderr_line(o, o->errline, o->errline_len);
			o->errline_len = 0;
		} else if (o->errline_len == STDERR_LINE_MAX) {
			log_stderr_line(o, o->errline, o->errline_len);
			o->errline_len = 0;
		}
	}
}

/* The script's stderr ended: a last line without its newline is logged. */
static enum output_status stderr_ended(void *ctx)
{
	struct response *o = ctx;

	if (o->errline_len > 0)
		log_stderr_line(o, o->errline, o->errline_len);
	o->errline_len = 0;
	return OUTPUT_OK;
}

static enum output_status stderr_data(void *ctx, const char *data, size_t len)
{
	struct response *o = ctx;

	if (o->set.stderr_to_fastcgi)
		return fcgi_out_stream(&o->out, FCGI_STDERR, data, len) < 0 ? OUTPUT_FAILED : OUTPUT_OK;
	stderr_to_log(o, data, len);
	return OUTPUT_OK;
}

void response_drain_stderr(struct response *o, int stderr_fd)
{
	ssize_t n;

	if (stderr_fd < 0)
		return;
	while ((n = read(stderr_fd, o->set.io, o->set.io_size)) > 0)
		stderr_data(o, o->set.io, (size_t)n);
	stderr_ended(o);
}

/* The script broke the CGI header rules: the relay ends, the script is
 * ended with it, and the client gets a 502 once the body has been read. */
static enum output_status headers_failed(struct response *o)
{
	o->hstate = HDR_FAILED;
	log_warnx("%s: bad CGI response: %s", o->label, o->hdr.error);
	return OUTPUT_BAD_HEADER;
}

/* Notes output for the status page. */
static void note_sent(struct response *o)
{
	struct activity *a = o->set.activity;

	if (!a)
		return;
	if (o->out.stdout_bytes > 0 && !o->out.holding)
		atomic_store(&a->state, ACTIVITY_SENDING);
	atomic_store_explicit(&a->bytes_out, o->out.stdout_bytes, memory_order_relaxed);
}

/* The header block is whole: it and the body bytes read with it go out
 * together, one record and one sendmsg for a small response. */
static int send_head(struct response *o, const char *rest, size_t len)
{
	struct iovec parts[2] = { { .iov_base = o->hdr.out, .iov_len = o->hdr.out_len },
				  { .iov_base = (char *)rest, .iov_len = len } };

	o->hstate = HDR_DONE;
	o->status = o->hdr.status;
	return fcgi_out_streamv(&o->out, FCGI_STDOUT, parts, 2);
}

static enum output_status stdout_data(void *ctx, const char *data, size_t len)
{
	struct response *o = ctx;
	int rc = 0;

	if (o->hstate == HDR_PARSING) {
		size_t used;
		switch (cgi_header_feed(&o->hdr, data, len, &used)) {
		case CGI_HEADER_MORE:
			return OUTPUT_OK;
		case CGI_HEADER_ERROR:
			return headers_failed(o);
		case CGI_HEADER_DONE:
			rc = send_head(o, data + used, len - used);
			len = 0;
			break;
		}
	}
	if (o->hstate == HDR_DONE && len > 0)
		rc = fcgi_out_stream(&o->out, FCGI_STDOUT, data, len);
	note_sent(o);
	return rc < 0 ? OUTPUT_FAILED : OUTPUT_OK;
}

/* The script's stdout ended: before its header block did, that is a 502. */
static enum output_status stdout_ended(void *ctx)
{
	struct response *o = ctx;

	if (o->hstate != HDR_PARSING)
		return OUTPUT_OK;
	cgi_header_eof(&o->hdr);
	return headers_failed(o);
}

int response_release(struct response *o)
{
	return fcgi_out_release(&o->out, o->set.io, o->set.io_size);
}

static enum output_status body_ended(void *ctx)
{
	return response_release(ctx) < 0 ? OUTPUT_FAILED : OUTPUT_OK;
}

struct output_sink response_sink(struct response *o)
{
	static const struct output_sink_ops ops = { .stdout_data = stdout_data,
						    .stderr_data = stderr_data,
						    .stdout_ended = stdout_ended,
						    .stderr_ended = stderr_ended,
						    .body_ended = body_ended };

	return (struct output_sink){ .ctx = o, .ops = &ops };
}

int response_page(struct response *o, const char *status_line, const char *type, const char *body)
{
	if (fcgi_out_status(&o->out, status_line, type, body) < 0)
		return -1;
	o->status = atoi(status_line);
	return 0;
}

void response_discard(struct response *o, bool forget_error)
{
	fcgi_out_discard(&o->out);
	if (forget_error)
		o->out.error = o->out.spool_error = 0;
}

int response_end(struct response *o, uint32_t app_status)
{
	return fcgi_out_end_request(&o->out, app_status, FCGI_REQUEST_COMPLETE);
}
