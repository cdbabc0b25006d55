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

void escape_json_string(FILE *m, const char *s)
{
	fputc('"', m);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(m, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(m, "\\u%04x", c);
		else
			fputc(c, m);
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
