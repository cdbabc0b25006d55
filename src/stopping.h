/* The daemon's stop, as the threads serving requests see it: two eventfds
 * that become readable, and stay so, when the main loop decides. */
#ifndef FCGIWRAP_STOPPING_H
#define FCGIWRAP_STOPPING_H

/* Creates the eventfds.  Returns 0, or -1 with errno. */
int stopping_init(void);

/* Stop taking requests: connections idle between requests are closed,
 * requests in progress finish.  stop_fd() becomes readable. */
void stopping_begin(void);
int stopping_stop_fd(void);

/* End running requests now (stop deadline, or a second signal): every wait
 * on a peer or a script slot returns, scripts are ended, clients answered.
 * kill_fd() becomes readable. */
void stopping_end_requests(void);
int stopping_kill_fd(void);

#endif
