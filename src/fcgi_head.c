/* FastCGI request head scanning.
 *
 * libfcgi reads BEGIN_REQUEST and PARAMS with blocking reads and no limit
 * on their size.  The daemon first peeks at what the peer sent and runs it
 * through this scanner, so that a slow, silent or malformed peer is found
 * out with a deadline and a clear reason, and libfcgi only ever parses a
 * complete, bounded head.  The rules follow what libfcgi accepts (it
 * skips records of other request ids, answers management records, and
 * refuses anything else before PARAMS has ended). */
#include "config.h"

#include <fastcgi.h>
#include <stdbool.h>

#include "fcgi_head.h"

enum fcgi_head_result fcgi_head_scan(const unsigned char *buf, size_t len, size_t *head_len,
				     const char **why)
{
	size_t off = 0;
	unsigned request_id = 0;
	bool begun = false;

	for (;;) {
		unsigned type, id, clen, plen;
		size_t rec_len;

		if (off >= FCGI_HEAD_MAX) {
			*why = "request head (BEGIN_REQUEST and PARAMS) larger than 131072 bytes";
			return FCGI_HEAD_INVALID;
		}
		if (len - off < FCGI_HEADER_LEN)
			return FCGI_HEAD_INCOMPLETE;
		if (buf[off] != FCGI_VERSION_1) {
			*why = "unsupported FastCGI version (not a FastCGI peer?)";
			return FCGI_HEAD_INVALID;
		}
		type = buf[off + 1];
		id = (unsigned)buf[off + 2] << 8 | buf[off + 3];
		clen = (unsigned)buf[off + 4] << 8 | buf[off + 5];
		plen = buf[off + 6];
		rec_len = FCGI_HEADER_LEN + clen + plen;
		if (off + rec_len > FCGI_HEAD_MAX) {
			*why = "request head (BEGIN_REQUEST and PARAMS) larger than 131072 bytes";
			return FCGI_HEAD_INVALID;
		}
		if (type == FCGI_BEGIN_REQUEST) {
			if (id == 0 || clen != sizeof(FCGI_BeginRequestBody)) {
				*why = "malformed BEGIN_REQUEST record";
				return FCGI_HEAD_INVALID;
			}
			if (begun) {
				*why = "second BEGIN_REQUEST before PARAMS ended (multiplexing is not supported)";
				return FCGI_HEAD_INVALID;
			}
		} else if (id != 0 && begun && id == request_id && type != FCGI_PARAMS) {
			*why = "record other than PARAMS before PARAMS ended";
			return FCGI_HEAD_INVALID;
		} else if (id != 0 && !begun) {
			*why = "request record before BEGIN_REQUEST";
			return FCGI_HEAD_INVALID;
		}
		if (len - off < rec_len)
			return FCGI_HEAD_INCOMPLETE;
		if (type == FCGI_BEGIN_REQUEST) {
			begun = true;
			request_id = id;
		} else if (type == FCGI_PARAMS && id == request_id && clen == 0) {
			*head_len = off + rec_len;
			return FCGI_HEAD_COMPLETE;
		}
		off += rec_len;
	}
}
