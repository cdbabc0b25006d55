/* Serving one FastCGI connection: its requests, one after another, each
 * from its head to its end. */
#ifndef FCGIWRAP_SERVE_H
#define FCGIWRAP_SERVE_H

#include "fcgi_conn.h"
#include "worker_buffers.h"

/* Serves the requests of c until it ends, fails, idles out or the daemon
 * stops.  The caller closes it. */
void serve_connection(struct fcgi_conn *c, struct worker_buffers *wb);

#endif
