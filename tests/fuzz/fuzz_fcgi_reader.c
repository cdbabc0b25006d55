/* libFuzzer target: the FastCGI record reader over whole conversations.
 *
 * The first two bytes choose the body buffer's size and how the rest is
 * cut into reads; the rest is what a web server sends.  The harness acts
 * as the daemon does on each event (replies sent, heads decoded, bodies
 * emptied, requests answered) and checks that no event breaks a bound:
 * bytes used within what was given, the body and head within their
 * buffers, replies well formed and within FCGI_REPLY_MAX, decoded
 * parameters all NAME=VALUE, an error always explained. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fastcgi.h>

#include "../../src/fcgi_params.h"
#include "../../src/fcgi_reader.h"

#define HEAD_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const struct fcgi_reader *rd)
{
	const unsigned char *h = rd->reply;

	if (rd->reply_len < FCGI_HEADER_LEN || rd->reply_len > FCGI_REPLY_MAX || h[0] != FCGI_VERSION_1 ||
	    (size_t)(h[4] << 8 | h[5]) + FCGI_HEADER_LEN != rd->reply_len || h[6] != 0)
		abort();
	if (h[1] != FCGI_GET_VALUES_RESULT && h[1] != FCGI_UNKNOWN_TYPE && h[1] != FCGI_END_REQUEST)
		abort();
}

static void check_head(struct fcgi_reader *rd)
{
	struct request_params p;
	const char *why = NULL;

	if (rd->head_len > HEAD_CAP || rd->state != FCGI_READER_BODY)
		abort();
	if (request_params_decode(rd->head, rd->head_len, &p, &why) < 0) {
		if (!why)
			abort();
		return;
	}
	for (size_t i = 0; i < p.count; i++) {
		const char *eq = strchr(p.env[i], '=');
		if (!eq || eq == p.env[i])
			abort();
	}
	if (p.count > FCGI_PARAMS_MAX || p.env[p.count])
		abort();
	request_params_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char head[HEAD_CAP], body[256];
	struct fcgi_reader rd;
	size_t chunk, pos, body_cap;
	unsigned events = 0;

	if (size < 2)
		return 0;
	fcgi_reader_init(&rd, 64, head, sizeof(head));
	body_cap = 1 + data[0] % sizeof(body);
	chunk = 1 + data[1];
	data += 2;
	size -= 2;
	for (pos = 0; pos < size;) {
		size_t len = size - pos < chunk ? size - pos : chunk;
		enum fcgi_event ev;
		size_t used = fcgi_reader_run(&rd, data + pos, len, &ev);

		if (used > len || rd.body_len > rd.body_cap || rd.head_len > HEAD_CAP)
			abort();
		(void)fcgi_reader_abort_ahead(&rd, data + pos + used, size - pos - used);
		pos += used;
		/* A reader that stops without an event must have used it all. */
		if (ev == FCGI_EV_MORE && used != len)
			abort();
		switch (ev) {
		case FCGI_EV_MORE:
			break;
		case FCGI_EV_REPLY:
			check_reply(&rd);
			fcgi_reader_reply_sent(&rd);
			break;
		case FCGI_EV_HEAD:
			check_head(&rd);
			/* The request's body buffer, as the daemon sets it. */
			rd.body = body;
			rd.body_cap = body_cap;
			break;
		case FCGI_EV_BODY_FULL:
			if (rd.body_len != rd.body_cap)
				abort();
			rd.body_len = 0;
			break;
		case FCGI_EV_BODY_END:
		case FCGI_EV_ABORT:
			/* The response, then the request is done. */
			fcgi_reader_request_done(&rd);
			break;
		case FCGI_EV_ERROR:
			if (!rd.error)
				abort();
			return 0;
		}
		/* An event that used nothing must not repeat for ever. */
		if (++events > 4 * size + 16)
			abort();
	}
	return 0;
}
