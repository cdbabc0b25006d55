/* How a request ended: what request_finish() (request.c) answers, counts
 * and logs for each. */
#ifndef FCGIWRAP_REQUEST_END_H
#define FCGIWRAP_REQUEST_END_H

enum request_end {
	END_COMPLETE,  /* the script has exited and its output ended (a 502 if
			* its header block was missing or bad) */
	END_REFUSED,   /* answered without a script: request_refuse(),
			* request_page() */
	END_TIMED_OUT, /* -t or --inactivity-timeout: 504 if no header was sent */
	END_STOPPING,  /* the daemon ends its requests: 503 if no header was sent */
	END_OUTPUT_FAILED, /* the output could not go on: the web server
			    * stopped taking it (as END_PEER_GONE), or the
			    * spool could not hold it (END_SPOOL_FAILED) */
	END_SPOOL_FAILED, /* output to hold until the body ends could not be
			   * held (--spool-limit, disk full): 502 or 503 */
	END_ABORTED,   /* FCGI_ABORT_REQUEST: FCGI_END_REQUEST, no more output */
	END_PEER_GONE, /* the connection closed or failed: nothing to answer */
};

#endif
