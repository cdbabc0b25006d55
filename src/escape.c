/* Escaping for log lines (see escape.h).  A request's parameters reach the
 * logs (nginx decodes %0A in the URI into SCRIPT_NAME): a newline would
 * start a forged line, "<0>" at its start a journal priority of the
 * client's choosing.  Every control byte, DEL and the backslash itself are
 * written as \xHH, so an escaped line reads back unambiguously. */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "escape.h"

static bool needs_escape(unsigned char c, const char *extra)
{
	return c < 0x20 || c == 0x7f || c == '\\' || (extra && c && strchr(extra, c));
}

size_t escaped_length(const char *in, size_t len, const char *extra)
{
	size_t n = len;

	for (size_t i = 0; i < len; i++)
		if (needs_escape((unsigned char)in[i], extra))
			n += 3;
	return n;
}

size_t escape_bytes(char *out, size_t size, const char *in, size_t len, const char *extra)
{
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (needs_escape(c, extra)) {
			if (pos + 4 >= size)
				break;
			out[pos++] = '\\';
			out[pos++] = 'x';
			out[pos++] = hex[c >> 4];
			out[pos++] = hex[c & 15];
		} else {
			if (pos + 1 >= size)
				break;
			out[pos++] = (char)c;
		}
	}
	out[pos] = '\0';
	return pos;
}

/* The length (2 to 4) of the well-formed UTF-8 sequence s starts with, or
 * 0.  Unicode's table 3-7: the second byte's range rules out overlong
 * forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
 * s is NUL-terminated, and NUL is never a continuation byte. */
static size_t utf8_sequence_length(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* JSON text is UTF-8 (RFC 8259): the strings come from the request (nginx
 * passes $request_uri's bytes as the client sent them), so a byte that
 * does not start a well-formed sequence becomes U+FFFD, or the page would
 * not be JSON. */
void escape_json_string(FILE *m, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	fputc('"', m);
	while (u && *u) {
		size_t n = *u >= 0x80 ? utf8_sequence_length(u) : 1;
		if (*u == '"' || *u == '\\')
			fprintf(m, "\\%c", *u);
		else if (*u < 0x20 || *u == 0x7f)
			fprintf(m, "\\u%04x", *u);
		else if (n == 0)
			fputs("\\ufffd", m);
		else
			fwrite(u, 1, n, m);
		u += n ? n : 1;
	}
	fputc('"', m);
}

void escape_metric_label(FILE *m, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(m, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", m);
		else
			fputc(*s, m);
	}
}
