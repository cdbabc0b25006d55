/* The FastCGI record reader (see fcgi_reader.h).
 *
 * Why the daemon reads records itself rather than through libfcgi: libfcgi's
 * reader overflows a stack buffer on an FCGI_GET_VALUES record that repeats
 * a name, allocates whatever a PARAMS length claims, blocks with no deadline
 * on records it consumes without returning, and loses its place on empty or
 * padded records of other ids.  Here every length is checked against the
 * record, the stream or a fixed limit before anything is copied, nothing is
 * allocated, and the caller decides when to read and how long to wait. */
#include "config.h"

#include <fastcgi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fcgi_reader.h"
#include "fcgi_record.h"

/* The variables FCGI_GET_VALUES may ask for (specification 4.1), in the
 * order the reply gives them; bit i of gv_asked stands for known[i]. */
static const char *const known_values[] = { FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS };
#define N_KNOWN_VALUES (sizeof(known_values) / sizeof(known_values[0]))

void fcgi_reader_init(struct fcgi_reader *rd, unsigned max_conns, unsigned char *head, size_t head_cap)
{
	memset(rd, 0, sizeof(*rd));
	rd->max_conns = max_conns;
	rd->head = head;
	rd->head_cap = head_cap;
	rd->state = FCGI_READER_IDLE;
}

__attribute__((format(printf, 2, 3)))
static void fail(struct fcgi_reader *rd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->error_buf, sizeof(rd->error_buf), fmt, ap);
	va_end(ap);
	rd->error = rd->error_buf;
}

/* A management record, whatever its type (specification 3.3). */
static void start_management_record(struct fcgi_reader *rd)
{
	rd->use = rd->type == FCGI_GET_VALUES ? FCGI_USE_GET_VALUES : FCGI_USE_UNKNOWN_MGMT;
	memset(&rd->gv, 0, sizeof(rd->gv));
	rd->gv_asked = 0;
}

/* FCGI_BEGIN_REQUEST: starts a request when none is active; another id
 * is refused with CANT_MPX_CONN, the active one again is an error. */
static void start_begin_request(struct fcgi_reader *rd)
{
	if (rd->content_len != sizeof(FCGI_BeginRequestBody))
		fail(rd, "malformed BEGIN_REQUEST record (%zu bytes of content, not 8)", rd->content_len);
	else if (rd->state == FCGI_READER_IDLE)
		rd->use = FCGI_USE_BEGIN;
	else if (rd->rec_id == rd->id)
		fail(rd, "BEGIN_REQUEST for request %u, which is active already", rd->rec_id);
	else
		rd->use = FCGI_USE_BEGIN_MPX;
}

/* "While a request ID R is inactive, the application ignores records
 * with requestId == R" (specification 3.3): counted, the first noted. */
static void ignore_record(struct fcgi_reader *rd)
{
	if (rd->ignored++ == 0) {
		rd->ignored_id = rd->rec_id;
		rd->ignored_type = rd->type;
	}
}

/* A record of the active request, other than BEGIN_REQUEST: whether it
 * fits the stream's state. */
static void start_request_record(struct fcgi_reader *rd)
{
	switch (rd->type) {
	case FCGI_PARAMS:
		if (rd->state != FCGI_READER_PARAMS)
			fail(rd, "PARAMS record after the parameters ended");
		else if (rd->content_len > rd->head_cap - rd->head_len)
			fail(rd, "request head (PARAMS) larger than %zu bytes", rd->head_cap);
		else
			rd->use = FCGI_USE_PARAMS;
		return;
	case FCGI_STDIN:
		if (rd->state == FCGI_READER_PARAMS)
			fail(rd, "record other than PARAMS (STDIN) before PARAMS ended");
		else if (rd->state == FCGI_READER_ENDED)
			fail(rd, "STDIN record after FCGI_STDIN ended");
		else
			rd->use = FCGI_USE_STDIN;
		return;
	case FCGI_ABORT_REQUEST:
		rd->use = FCGI_USE_ABORT;
		return;
	default:
		if (rd->state == FCGI_READER_PARAMS)
			fail(rd, "record other than PARAMS (type %u) before PARAMS ended", rd->type);
		else
			fail(rd, "unexpected record of type %u for the active request", rd->type);
	}
}

/* Decides, from a record's header, what its content is for. */
static void start_record(struct fcgi_reader *rd)
{
	struct fcgi_header_fields h = fcgi_header_decode(rd->hdr);

	rd->type = h.type;
	rd->rec_id = h.id;
	rd->content_len = rd->content_left = h.content_len;
	rd->padding_left = h.padding_len;
	rd->in_record = true;
	rd->use = FCGI_USE_SKIP;
	if (h.version != FCGI_VERSION_1)
		fail(rd, "unsupported FastCGI version %u (not a FastCGI peer?)", h.version);
	else if (rd->rec_id == FCGI_NULL_REQUEST_ID)
		start_management_record(rd);
	else if (rd->type == FCGI_BEGIN_REQUEST)
		start_begin_request(rd);
	else if (rd->state == FCGI_READER_IDLE || rd->rec_id != rd->id)
		ignore_record(rd);
	else
		start_request_record(rd);
}

static void note_value_name(struct fcgi_reader *rd)
{
	const struct fcgi_nv_scan *s = &rd->gv;

	for (size_t i = 0; i < N_KNOWN_VALUES; i++) {
		if (s->name_len == strlen(known_values[i]) && memcmp(s->name, known_values[i], s->name_len) == 0)
			rd->gv_asked |= 1u << i;
	}
}

/* Moves past a name or value that is complete (zero-length ones too). */
static void nv_settle(struct fcgi_reader *rd)
{
	struct fcgi_nv_scan *s = &rd->gv;

	if (s->phase == 2 && s->have == s->name_len) {
		note_value_name(rd);
		s->phase = 3;
		s->have = 0;
	}
	if (s->phase == 3 && s->have == s->value_len)
		s->phase = 0;
}

/* Reads the name-value pairs of an FCGI_GET_VALUES record as they come,
 * keeping only the start of each name.  Returns the bytes used. */
static size_t scan_get_values(struct fcgi_reader *rd, const unsigned char *in, size_t len)
{
	struct fcgi_nv_scan *s = &rd->gv;
	size_t used = 0;

	while (used < len && !rd->error) {
		if (s->phase < 2) {
			uint32_t v;
			/* A length comes a byte at a time, as the record does. */
			s->len[s->len_have++] = in[used++];
			if (!fcgi_nv_length_decode(s->len, s->len_have, &v))
				continue;
			s->len_have = 0;
			if (s->phase == 0) {
				s->name_len = v;
				s->phase = 1;
				continue;
			}
			s->value_len = v;
			s->phase = 2;
			s->have = 0;
			if ((uint64_t)s->name_len + s->value_len > rd->content_left - used) {
				fail(rd, "malformed GET_VALUES record: a name or value runs past the record");
				break;
			}
		} else {
			uint32_t want = (s->phase == 2 ? s->name_len : s->value_len) - s->have;
			size_t take = len - used < want ? len - used : want;
			if (s->phase == 2 && s->have < sizeof(s->name)) {
				size_t keep = sizeof(s->name) - s->have;
				memcpy(s->name + s->have, in + used, take < keep ? take : keep);
			}
			s->have += (uint32_t)take;
			used += take;
		}
		nv_settle(rd);
	}
	return used;
}

/* Takes content bytes of the current record.  Returns how many. */
static size_t take_content(struct fcgi_reader *rd, const unsigned char *in, size_t len)
{
	size_t n = len < rd->content_left ? len : rd->content_left;
	size_t at = rd->content_len - rd->content_left;

	switch (rd->use) {
	case FCGI_USE_BEGIN:
	case FCGI_USE_BEGIN_MPX:
		memcpy(rd->begin + at, in, n); /* content_len is 8 */
		break;
	case FCGI_USE_PARAMS:
		memcpy(rd->head + rd->head_len, in, n); /* fits: checked at the header */
		rd->head_len += n;
		break;
	case FCGI_USE_STDIN:
		if (n > rd->body_cap - rd->body_len)
			n = rd->body_cap - rd->body_len;
		memcpy(rd->body + rd->body_len, in, n);
		rd->body_len += n;
		break;
	case FCGI_USE_GET_VALUES:
		n = scan_get_values(rd, in, n);
		break;
	default:
		break;
	}
	rd->content_left -= n;
	return n;
}

static void reply_get_values(struct fcgi_reader *rd)
{
	unsigned char *content = rd->reply + FCGI_HEADER_LEN, *p = content;
	char conns[16];

	snprintf(conns, sizeof(conns), "%u", rd->max_conns);
	for (size_t i = 0; i < N_KNOWN_VALUES; i++) {
		/* One connection serves one request at a time: as many
		 * requests as connections, and no multiplexing. */
		const char *name = known_values[i], *value = i < 2 ? conns : "0";
		size_t nl = strlen(name), vl = strlen(value);
		if (!(rd->gv_asked & 1u << i))
			continue;
		*p++ = (unsigned char)nl;
		*p++ = (unsigned char)vl;
		memcpy(p, name, nl);
		memcpy(p + nl, value, vl);
		p += nl + vl;
	}
	fcgi_header_encode((FCGI_Header *)rd->reply, FCGI_GET_VALUES_RESULT, 0, (size_t)(p - content));
	rd->reply_len = (size_t)(p - rd->reply);
}

static void reply_unknown_type(struct fcgi_reader *rd)
{
	FCGI_UnknownTypeRecord *rec = (FCGI_UnknownTypeRecord *)rd->reply;

	fcgi_header_encode(&rec->header, FCGI_UNKNOWN_TYPE, 0, sizeof(rec->body));
	memset(&rec->body, 0, sizeof(rec->body));
	rec->body.type = (unsigned char)rd->type;
	rd->reply_len = sizeof(*rec);
}

/* A record has been read whole, padding included: what it means. */
static enum fcgi_event finish_record(struct fcgi_reader *rd)
{
	rd->in_record = false;
	rd->hdr_have = 0;
	switch (rd->use) {
	case FCGI_USE_BEGIN:
		rd->id = rd->rec_id;
		rd->role = (uint16_t)(rd->begin[0] << 8 | rd->begin[1]);
		rd->keep_conn = rd->begin[2] & FCGI_KEEP_CONN;
		rd->head_len = 0;
		rd->state = FCGI_READER_PARAMS;
		return FCGI_EV_MORE;
	case FCGI_USE_BEGIN_MPX:
		fcgi_end_request_encode((FCGI_EndRequestRecord *)rd->reply, rd->rec_id, 0, FCGI_CANT_MPX_CONN);
		rd->reply_len = sizeof(FCGI_EndRequestRecord);
		return FCGI_EV_REPLY;
	case FCGI_USE_PARAMS:
		if (rd->content_len > 0)
			return FCGI_EV_MORE;
		rd->state = FCGI_READER_BODY;
		return FCGI_EV_HEAD;
	case FCGI_USE_STDIN:
		if (rd->content_len > 0)
			return FCGI_EV_MORE;
		rd->state = FCGI_READER_ENDED;
		return FCGI_EV_BODY_END;
	case FCGI_USE_ABORT:
		return FCGI_EV_ABORT;
	case FCGI_USE_GET_VALUES:
		if (rd->gv.phase != 0 || rd->gv.len_have != 0) {
			fail(rd, "malformed GET_VALUES record: its last name-value pair is cut short");
			return FCGI_EV_ERROR;
		}
		reply_get_values(rd);
		return FCGI_EV_REPLY;
	case FCGI_USE_UNKNOWN_MGMT:
		reply_unknown_type(rd);
		return FCGI_EV_REPLY;
	case FCGI_USE_SKIP:
		break;
	}
	return FCGI_EV_MORE;
}

size_t fcgi_reader_run(struct fcgi_reader *rd, const unsigned char *in, size_t len, enum fcgi_event *ev)
{
	size_t used = 0;

	for (;;) {
		if (rd->error) {
			*ev = FCGI_EV_ERROR;
			return used;
		}
		if (rd->reply_len) {
			*ev = FCGI_EV_REPLY;
			return used;
		}
		if (!rd->in_record) {
			size_t n = FCGI_HEADER_LEN - rd->hdr_have;
			if (n > len - used)
				n = len - used;
			memcpy(rd->hdr + rd->hdr_have, in + used, n);
			rd->hdr_have += n;
			used += n;
			if (rd->hdr_have < FCGI_HEADER_LEN) {
				*ev = FCGI_EV_MORE;
				return used;
			}
			start_record(rd);
			continue;
		}
		if (rd->content_left > 0) {
			if (used == len) {
				*ev = FCGI_EV_MORE;
				return used;
			}
			if (rd->use == FCGI_USE_STDIN && rd->body_len == rd->body_cap) {
				*ev = FCGI_EV_BODY_FULL;
				return used;
			}
			used += take_content(rd, in + used, len - used);
			continue;
		}
		if (rd->padding_left > 0) {
			size_t n = rd->padding_left < len - used ? rd->padding_left : len - used;
			if (n == 0) {
				*ev = FCGI_EV_MORE;
				return used;
			}
			rd->padding_left -= n;
			used += n;
			continue;
		}
		*ev = finish_record(rd);
		if (*ev != FCGI_EV_MORE)
			return used;
	}
}

void fcgi_reader_reply_sent(struct fcgi_reader *rd)
{
	rd->reply_len = 0;
}

void fcgi_reader_request_done(struct fcgi_reader *rd)
{
	/* Answered in the middle of one of its records (an abort seen ahead
	 * of the body): the rest of that record is ignored like the others. */
	if (rd->in_record && rd->rec_id == rd->id && rd->rec_id != FCGI_NULL_REQUEST_ID)
		rd->use = FCGI_USE_SKIP;
	rd->state = FCGI_READER_IDLE;
	rd->id = 0;
	rd->head_len = 0;
	/* The body buffer was the request's. */
	rd->body = NULL;
	rd->body_cap = rd->body_len = 0;
}

size_t fcgi_reader_body_pending(const struct fcgi_reader *rd)
{
	if (rd->error || rd->reply_len || !rd->in_record || rd->use != FCGI_USE_STDIN)
		return 0;
	return rd->content_left;
}

void fcgi_reader_body_moved(struct fcgi_reader *rd, size_t n)
{
	rd->content_left -= n < rd->content_left ? n : rd->content_left;
}

size_t fcgi_reader_header_need(const struct fcgi_reader *rd)
{
	if (!rd->in_record)
		return FCGI_HEADER_LEN - rd->hdr_have;
	if (rd->content_left > 0)
		return 0;
	return rd->padding_left + FCGI_HEADER_LEN;
}

bool fcgi_reader_body_ends_empty(const struct fcgi_reader *rd, const unsigned char *in, size_t len)
{
	struct fcgi_header_fields h;

	/* Within a record, or a header partly taken: in[] does not start
	 * with a header. */
	if (rd->error || rd->body_len > 0 || rd->in_record || rd->hdr_have > 0)
		return false;
	if (rd->state == FCGI_READER_ENDED)
		return true;
	if (rd->state != FCGI_READER_BODY || len < FCGI_HEADER_LEN)
		return false;
	h = fcgi_header_decode(in);
	return h.version == FCGI_VERSION_1 && h.type == FCGI_STDIN && h.id == rd->id && h.content_len == 0;
}

bool fcgi_reader_abort_ahead(const struct fcgi_reader *rd, const unsigned char *in, size_t len)
{
	size_t off;

	if (rd->state == FCGI_READER_IDLE || rd->error || (!rd->in_record && rd->hdr_have > 0))
		return false;
	/* in[] starts where run() stopped: inside the current record, or at
	 * the start of the next one. */
	off = rd->in_record ? rd->content_left + rd->padding_left : 0;
	while (off <= len && len - off >= FCGI_HEADER_LEN) {
		struct fcgi_header_fields h = fcgi_header_decode(in + off);
		if (h.version != FCGI_VERSION_1)
			return false;
		if (h.type == FCGI_ABORT_REQUEST && h.id == rd->id)
			return true;
		off += FCGI_HEADER_LEN + h.content_len + h.padding_len;
	}
	return false;
}
