/* libFuzzer target: the CGI response header parser.  The first byte sets
 * the size of the pieces the rest is fed in, as pipe reads would split it;
 * the result must not depend on the split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cgi_header.h"

static enum cgi_header_result parse(const uint8_t *data, size_t len, size_t piece, struct cgi_header *h,
				    size_t *body_at)
{
	enum cgi_header_result res = CGI_HEADER_MORE;
	size_t pos = 0, used;

	cgi_header_init(h);
	while (pos < len && res == CGI_HEADER_MORE) {
		size_t n = len - pos < piece ? len - pos : piece;
		res = cgi_header_feed(h, (const char *)data + pos, n, &used);
		if (used > n)
			abort();
		pos += used;
	}
	if (res == CGI_HEADER_MORE)
		cgi_header_eof(h);
	*body_at = pos;
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cgi_header a, b;
	size_t at_a, at_b, piece;
	enum cgi_header_result ra, rb;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	data++;
	size--;
	ra = parse(data, size, size ? size : 1, &a, &at_a);
	rb = parse(data, size, piece, &b, &at_b);
	if (ra != rb)
		abort();
	if (ra == CGI_HEADER_DONE) {
		if (at_a != at_b || a.out_len != b.out_len || memcmp(a.out, b.out, a.out_len) != 0)
			abort();
		if (a.out_len < 2 || memcmp(a.out + a.out_len - 2, "\r\n", 2) != 0)
			abort();
		if (a.status < 100 || a.status > 999 || at_a > CGI_HEADER_MAX)
			abort();
	} else if (!a.error || !b.error) {
		abort();
	}
	cgi_header_free(&a);
	cgi_header_free(&b);
	return 0;
}
