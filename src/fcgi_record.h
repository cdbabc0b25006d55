/* FastCGI record headers and name-value lengths decoded, for the reader
 * and the PARAMS decoder, and record headers and FCGI_END_REQUEST bodies
 * encoded, for the reader (its replies) and the writer (responses).  Layouts and
 * constants are libfcgi's <fastcgi.h>, the specification's own header. */
#ifndef FCGIWRAP_FCGI_RECORD_H
#define FCGIWRAP_FCGI_RECORD_H

#include <fastcgi.h>
#include <stddef.h>
#include <stdint.h>

/* A record header's fields, from its 8 bytes at h. */
struct fcgi_header_fields {
	unsigned version, type;
	uint16_t id;
	size_t content_len, padding_len;
};

static inline struct fcgi_header_fields fcgi_header_decode(const unsigned char *h)
{
	return (struct fcgi_header_fields){ .version = h[0], .type = h[1], .id = (uint16_t)(h[2] << 8 | h[3]),
					    .content_len = (size_t)h[4] << 8 | h[5], .padding_len = h[6] };
}

/* A name or value length of a name-value pair (specification 3.4: one
 * byte, or four with the top bit set) from the avail bytes at p.  Returns
 * the bytes it takes, or 0 when avail does not hold it all yet. */
static inline size_t fcgi_nv_length_decode(const unsigned char *p, size_t avail, uint32_t *out)
{
	if (avail < 1)
		return 0;
	if (!(p[0] & 0x80)) {
		*out = p[0];
		return 1;
	}
	if (avail < 4)
		return 0;
	*out = (uint32_t)(p[0] & 0x7f) << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return 4;
}

/* A record header for len bytes of content (at most FCGI_MAX_LENGTH)
 * without padding: the daemon never pads what it sends. */
static inline void fcgi_header_encode(FCGI_Header *h, unsigned type, uint16_t id, size_t len)
{
	h->version = FCGI_VERSION_1;
	h->type = (unsigned char)type;
	h->requestIdB1 = (unsigned char)(id >> 8);
	h->requestIdB0 = (unsigned char)id;
	h->contentLengthB1 = (unsigned char)(len >> 8);
	h->contentLengthB0 = (unsigned char)len;
	h->paddingLength = 0;
	h->reserved = 0;
}

/* A whole FCGI_END_REQUEST record. */
static inline void fcgi_end_request_encode(FCGI_EndRequestRecord *rec, uint16_t id, uint32_t app_status,
					   uint8_t protocol_status)
{
	fcgi_header_encode(&rec->header, FCGI_END_REQUEST, id, sizeof(rec->body));
	rec->body.appStatusB3 = (unsigned char)(app_status >> 24);
	rec->body.appStatusB2 = (unsigned char)(app_status >> 16);
	rec->body.appStatusB1 = (unsigned char)(app_status >> 8);
	rec->body.appStatusB0 = (unsigned char)app_status;
	rec->body.protocolStatus = protocol_status;
	rec->body.reserved[0] = rec->body.reserved[1] = rec->body.reserved[2] = 0;
}

#endif
