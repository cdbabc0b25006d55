/* --allow-from: which TCP peers may connect.  Pure: no I/O. */
#ifndef FCGIWRAP_PEER_ACL_H
#define FCGIWRAP_PEER_ACL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

struct peer_rule {
	int family;                 /* AF_INET or AF_INET6 */
	unsigned char addr[16];     /* network address, host bits cleared */
	unsigned prefix;            /* bits that must match */
};

/* Parses "ADDR" or "ADDR/PREFIX", IPv4 or IPv6.  Returns 0, or -1 with
 * *why. */
int peer_rule_parse(const char *text, struct peer_rule *out, const char **why);

/* Whether the peer address sa matches one of the n rules.  An IPv4 peer
 * seen on an IPv6 socket (::ffff:a.b.c.d) is matched as IPv4. */
bool peer_allowed(const struct peer_rule *rules, size_t n, const struct sockaddr *sa);

/* Whether a listening address is loopback (127.0.0.0/8, ::1), or unix. */
bool addr_is_loopback(const struct sockaddr *sa);

#endif
