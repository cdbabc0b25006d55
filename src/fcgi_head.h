/* Checks the head of a FastCGI request (records up to the end of PARAMS)
 * before libfcgi reads it.  Pure: no I/O. */
#ifndef FCGIWRAP_FCGI_HEAD_H
#define FCGIWRAP_FCGI_HEAD_H

#include <stddef.h>

/* Largest request head accepted: BEGIN_REQUEST, management records and
 * every PARAMS record with their padding. */
#define FCGI_HEAD_MAX (128 * 1024)

enum fcgi_head_result {
	FCGI_HEAD_COMPLETE,   /* BEGIN_REQUEST and all of PARAMS are there */
	FCGI_HEAD_INCOMPLETE, /* valid so far; more bytes needed */
	FCGI_HEAD_INVALID,    /* malformed or too large: see why */
};

/* Scans the first len bytes a connection sent.  On COMPLETE, *head_len is
 * the size of the head. */
enum fcgi_head_result fcgi_head_scan(const unsigned char *buf, size_t len, size_t *head_len,
				     const char **why);

#endif
