/* One request's state (see request.h): its constructor and destructor. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "request.h"
#include "settings.h"

void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb)
{
	memset(r, 0, sizeof(*r));
	r->conn = conn;
	r->wb = wb;
	fcgi_out_init(&r->out, conn->fd, conn->rd.id, &conn->wait);
	r->out.spool_max = cfg.spool_limit;
	cgi_header_init(&r->hdr);
	script_proc_init(&r->proc);
	r->script_fd = -1;
	r->label = "(unknown script)";
	r->start_ms = r->last_activity = r->body_wait_since = monotonic_ms();
	r->deadline = cfg.timeout_ms ? r->start_ms + cfg.timeout_ms : 0;
	/* The head's deadline ends with the head: from here on -t is the only
	 * deadline of the request's waits, each also bounded by --peer-timeout
	 * (a body read after a long queue was cut by the head's). */
	conn->wait.deadline = r->deadline;
	/* Body bytes are decoded straight into the buffer they are fed to
	 * the script from. */
	conn->rd.body = (unsigned char *)wb->body;
	conn->rd.body_cap = WB_BODY_SIZE;
	conn->rd.body_len = 0;
}

void request_free(struct request *r)
{
	if (r->listed)
		activity_end(&r->activity);
	r->listed = false;
	fcgi_out_free(&r->out);
	cgi_header_free(&r->hdr);
	script_proc_close(&r->proc);
	script_location_free(&r->loc);
	request_params_free(&r->params);
	if (r->script_fd >= 0)
		close(r->script_fd);
	r->script_fd = -1;
	free(r->env);
	free(r->dir);
	free(r->errline);
	r->env = NULL;
	r->dir = r->errline = NULL;
}
