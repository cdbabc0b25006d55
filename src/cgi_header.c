/* CGI response header parsing.
 *
 * The script's header block is collected whole (it is small and bounded by
 * CGI_HEADER_MAX) and checked before a byte of it is forwarded, so a
 * malformed block becomes a clean 502 rather than a half-sent response.
 * Lines may end in LF or CRLF; the block is passed on with CRLF line ends
 * and header order and repetitions kept. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cgi_header.h"

#define REDIRECT_STATUS "Status: 302 Found\r\n"

void cgi_header_init(struct cgi_header *h)
{
	memset(h, 0, sizeof(*h));
}

void cgi_header_free(struct cgi_header *h)
{
	free(h->raw);
	free(h->out);
	cgi_header_init(h);
}

/* RFC 9110 token characters, the only ones allowed in a field name. */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* A status code: three digits from 100 to 999, then the end or a space.
 * Returns it, or -1. */
static int status_code(const char *v, const char *end)
{
	if (end - v < 3 || v[0] < '1' || v[0] > '9' || v[1] < '0' || v[1] > '9' || v[2] < '0' || v[2] > '9' ||
	    (end - v > 3 && v[3] != ' '))
		return -1;
	return (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
}

/* The normalised copy being written, and what its lines said so far. */
struct block_out {
	char *o;
	bool has_status, has_location;
};

static void put_line(struct block_out *b, const char *prefix, const char *from, const char *to)
{
	size_t n = strlen(prefix);

	memcpy(b->o, prefix, n);
	memcpy(b->o + n, from, (size_t)(to - from));
	b->o += n + (size_t)(to - from);
	*b->o++ = '\r';
	*b->o++ = '\n';
}

/* NPH ("non-parsed headers", RFC 3875 5): the script starts with an HTTP
 * status line.  A FastCGI web server builds its own, so the line becomes a
 * Status: header and the rest goes on as CGI headers.  Returns NULL, or
 * what was wrong. */
static const char *take_status_line(struct cgi_header *h, struct block_out *b, const char *p, const char *end)
{
	int code = status_code(p + 9, end);

	if (code < 0)
		return "malformed HTTP status line (NPH)";
	b->has_status = true;
	h->status = code;
	put_line(b, "Status: ", p + 9, end);
	return NULL;
}

/* One header line (not the blank one): checked, noted, copied.  Returns
 * NULL, or what was wrong. */
static const char *take_line(struct cgi_header *h, struct block_out *b, const char *p, const char *end)
{
	const char *colon, *v;
	size_t name_len;

	if (memchr(p, '\0', (size_t)(end - p)) || memchr(p, '\r', (size_t)(end - p)))
		return "control character in header line";
	if (*p == ' ' || *p == '\t')
		return "folded header line";
	if (p == h->raw && end - p >= 12 && strncmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ')
		return take_status_line(h, b, p, end);
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || colon == p)
		return "header line without a field name";
	name_len = (size_t)(colon - p);
	for (size_t i = 0; i < name_len; i++) {
		if (!is_tchar((unsigned char)p[i]))
			return "invalid character in header field name";
	}
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	if (name_is(p, name_len, "Status")) {
		if (b->has_status)
			return "more than one Status header";
		if ((h->status = status_code(v, end)) < 0)
			return "malformed Status header";
		b->has_status = true;
	} else if (name_is(p, name_len, "Location")) {
		if (v == end)
			return "empty Location header";
		b->has_location = true;
	}
	put_line(b, "", p, end);
	return NULL;
}

/* Checks the collected block line by line and builds the normalised copy. */
static enum cgi_header_result parse_block(struct cgi_header *h, size_t block_len)
{
	const char *p = h->raw, *end = h->raw + block_len;
	struct block_out b = { NULL, false, false };

	/* Each LF may gain a CR: twice the input is always enough, plus a
	 * Status line for a redirect. */
	h->out = malloc(block_len * 2 + 2 + sizeof(REDIRECT_STATUS));
	if (!h->out) {
		h->error = "out of memory";
		return CGI_HEADER_ERROR;
	}
	b.o = h->out;
	h->status = 200;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *line_end = nl;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
		if (line_end == p)
			break; /* the blank line */
		h->error = take_line(h, &b, p, line_end);
		if (h->error)
			return CGI_HEADER_ERROR;
		p = nl + 1;
	}
	/* A redirect without Status is a 302 (RFC 3875 6.2.3).  nginx would
	 * say so itself, Apache's mod_proxy_fcgi would answer 200: the Status
	 * line makes every web server agree. */
	if (b.has_location && !b.has_status) {
		h->status = 302;
		memcpy(b.o, REDIRECT_STATUS, sizeof(REDIRECT_STATUS) - 1);
		b.o += sizeof(REDIRECT_STATUS) - 1;
	}
	*b.o++ = '\r';
	*b.o++ = '\n';
	h->out_len = (size_t)(b.o - h->out);
	return CGI_HEADER_DONE;
}

/* Appends take bytes to raw, growing it by doubling up to
 * CGI_HEADER_MAX (take never goes past it).  Returns 0, or -1 with
 * error set. */
static int append_raw(struct cgi_header *h, const char *data, size_t take)
{
	if (h->raw_len + take > h->raw_cap) {
		size_t cap = h->raw_cap ? h->raw_cap : 1024;
		char *n;
		while (cap < h->raw_len + take)
			cap *= 2;
		if (cap > CGI_HEADER_MAX)
			cap = CGI_HEADER_MAX;
		n = realloc(h->raw, cap);
		if (!n) {
			h->error = "out of memory";
			return -1;
		}
		h->raw = n;
		h->raw_cap = cap;
	}
	memcpy(h->raw + h->raw_len, data, take);
	h->raw_len += take;
	return 0;
}

/* Looks for LF (CR) LF, resuming where the last call stopped, so a block
 * fed in small pieces is still scanned once.  Returns the block's length,
 * blank line included, or 0 with scan set where the next call resumes. */
static size_t find_blank_line(struct cgi_header *h)
{
	size_t i = h->scan;

	while (i < h->raw_len) {
		const char *nl = memchr(h->raw + i, '\n', h->raw_len - i);
		size_t j;
		if (!nl) {
			i = h->raw_len;
			break;
		}
		i = (size_t)(nl - h->raw);
		j = i + 1;
		if (j < h->raw_len && h->raw[j] == '\r')
			j++;
		if (j >= h->raw_len)
			break; /* the next byte decides: resume at this LF */
		if (h->raw[j] == '\n')
			return j + 1;
		i++;
	}
	h->scan = i;
	return 0;
}

enum cgi_header_result cgi_header_feed(struct cgi_header *h, const char *data, size_t len,
				       size_t *consumed)
{
	size_t take = len, block_len;

	*consumed = 0;
	if (h->error)
		return CGI_HEADER_ERROR;
	if (h->raw_len + take > CGI_HEADER_MAX)
		take = CGI_HEADER_MAX - h->raw_len;
	if (append_raw(h, data, take) < 0)
		return CGI_HEADER_ERROR;

	/* A blank first line means no headers at all, which CGI forbids. */
	if (h->raw_len > 0 && (h->raw[0] == '\n' || (h->raw[0] == '\r' && h->raw_len > 1 && h->raw[1] == '\n'))) {
		h->error = "blank first line: no CGI headers";
		return CGI_HEADER_ERROR;
	}
	block_len = find_blank_line(h);
	if (block_len > 0) {
		*consumed = take - (h->raw_len - block_len);
		h->raw_len = block_len;
		return parse_block(h, block_len);
	}
	*consumed = take;
	if (h->raw_len >= CGI_HEADER_MAX) {
		h->error = "header block longer than 65536 bytes";
		return CGI_HEADER_ERROR;
	}
	return CGI_HEADER_MORE;
}

void cgi_header_eof(struct cgi_header *h)
{
	const char *last_nl;

	if (h->error)
		return;
	if (h->raw_len == 0) {
		h->error = "script produced no output";
		return;
	}
	/* Name the first bad line if there is one (a script that prints no
	 * headers at all is the usual case), else say what is missing. */
	last_nl = h->raw ? memrchr(h->raw, '\n', h->raw_len) : NULL;
	if (last_nl && parse_block(h, (size_t)(last_nl - h->raw) + 1) == CGI_HEADER_ERROR)
		return;
	free(h->out);
	h->out = NULL;
	h->out_len = 0;
	h->error = "script output ended inside its headers (no blank line)";
}
