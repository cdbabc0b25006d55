/* Decoding a request's FCGI_PARAMS stream (see fcgi_params.h). */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_params.h"
#include "fcgi_record.h"

/* Reads a name or value length at buf[*pos], within len.  Returns false
 * if the stream ends inside it. */
static bool read_length(const unsigned char *buf, size_t len, size_t *pos, uint32_t *out)
{
	size_t n = *pos < len ? fcgi_nv_length_decode(buf + *pos, len - *pos, out) : 0;

	*pos += n;
	return n > 0;
}

static bool name_is_usable(const unsigned char *name, uint32_t len)
{
	return len > 0 && !memchr(name, '=', len) && !memchr(name, '\0', len);
}

/* Points each named field at the first value of its name; entry is
 * "NAME=VALUE", its name nl bytes long. */
static void note_named(struct request_params *p, const char *entry, size_t nl)
{
	static const struct {
		const char *name;
		size_t len;
		size_t offset;
	} named[] = {
#define NAMED(n, field) { n, sizeof(n) - 1, offsetof(struct request_params, field) }
		NAMED("SCRIPT_FILENAME", script_filename),
		NAMED("DOCUMENT_ROOT", document_root),
		NAMED("SCRIPT_NAME", script_name),
		NAMED("PATH_INFO", path_info),
		NAMED("FCGI_CHDIR", fcgi_chdir),
		NAMED("QUERY_STRING", query_string),
		NAMED("REQUEST_METHOD", request_method),
		NAMED("REQUEST_URI", request_uri),
		NAMED("REMOTE_ADDR", remote_addr),
		NAMED("CONTENT_LENGTH", content_length),
#undef NAMED
	};

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		const char **field = (const char **)((char *)p + named[i].offset);
		if (named[i].len == nl && !*field && memcmp(entry, named[i].name, nl) == 0) {
			*field = entry + nl + 1;
			return;
		}
	}
}

/* Walks the pairs once to check every length and count them. */
static int count_pairs(const unsigned char *buf, size_t len, size_t *count, const char **why)
{
	size_t pos = 0;

	*count = 0;
	while (pos < len) {
		uint32_t nl, vl;
		if (!read_length(buf, len, &pos, &nl) || !read_length(buf, len, &pos, &vl)) {
			*why = "malformed PARAMS: the stream ends inside a length";
			return -1;
		}
		if ((uint64_t)nl + vl > len - pos) {
			*why = "malformed PARAMS: a name or value runs past the end of the stream";
			return -1;
		}
		if (++*count > FCGI_PARAMS_MAX) {
			*why = "more than 4096 parameters";
			return -1;
		}
		pos += (size_t)nl + vl;
	}
	return 0;
}

/* CONTENT_LENGTH: digits only (RFC 3875 4.1.2: 1*digit), or -1. */
static long long parse_body_length(const char *s)
{
	long long n = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (LLONG_MAX - (*s - '0')) / 10)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n;
}

int request_params_decode(unsigned char *buf, size_t len, struct request_params *p, const char **why)
{
	size_t pos = 0, out = 0, count;

	memset(p, 0, sizeof(*p));
	p->body_length = -1;
	if (count_pairs(buf, len, &count, why) < 0)
		return -1;
	p->env = malloc((count + 1) * sizeof(char *));
	if (!p->env) {
		*why = "out of memory";
		return -1;
	}
	/* Each pair takes at least two length bytes more than its
	 * "NAME=VALUE\0" string, so the strings are written over the stream
	 * behind the point being read: in place, with memmove. */
	while (pos < len) {
		uint32_t nl, vl;
		unsigned char *name;
		read_length(buf, len, &pos, &nl);
		read_length(buf, len, &pos, &vl);
		name = buf + pos;
		pos += (size_t)nl + vl;
		if (!name_is_usable(name, nl)) {
			p->dropped++;
			continue;
		}
		memmove(buf + out, name, nl);
		buf[out + nl] = '=';
		memmove(buf + out + nl + 1, name + nl, vl);
		buf[out + nl + 1 + vl] = '\0';
		p->env[p->count++] = (char *)buf + out;
		note_named(p, (char *)buf + out, nl);
		out += (size_t)nl + vl + 2;
	}
	p->env[p->count] = NULL;
	p->body_length = parse_body_length(p->content_length);
	return 0;
}

void request_params_free(struct request_params *p)
{
	free(p->env);
	memset(p, 0, sizeof(*p));
}
