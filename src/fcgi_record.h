/* Encoding FastCGI record headers and FCGI_END_REQUEST bodies: shared by
 * the reader (its replies) and the writer (responses).  Layouts and
 * constants are libfcgi's <fastcgi.h>, the specification's own header. */
#ifndef FCGIWRAP_FCGI_RECORD_H
#define FCGIWRAP_FCGI_RECORD_H

#include <fastcgi.h>
#include <stddef.h>
#include <stdint.h>

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
