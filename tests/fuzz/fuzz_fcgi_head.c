/* libFuzzer target: the FastCGI request head scanner.  A complete head
 * lies within the input and the limit, and every shorter prefix of a
 * complete head is incomplete (never invalid). */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/fcgi_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t head_len = 0;
	const char *why = NULL;
	enum fcgi_head_result r = fcgi_head_scan(data, size, &head_len, &why);

	if (r == FCGI_HEAD_COMPLETE) {
		size_t cut;
		if (head_len > size || head_len > FCGI_HEAD_MAX)
			abort();
		cut = head_len > 0 ? head_len - 1 - (size % head_len) % head_len : 0;
		if (cut < head_len && fcgi_head_scan(data, cut, &head_len, &why) != FCGI_HEAD_INCOMPLETE)
			abort();
	} else if (r == FCGI_HEAD_INVALID && !why) {
		abort();
	}
	return 0;
}
