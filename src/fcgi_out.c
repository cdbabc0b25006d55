/* FastCGI record output.
 *
 * Every send waits for the peer only as its struct peer_wait allows
 * (--peer-timeout without progress, the request's deadlines, the daemon's
 * stop), and a short write is carried on, never dropped.  A header and
 * its payload go out with one sendmsg(2), up to four records of 64 KB at
 * a time.
 *
 * The spool exists because nginx stops sending the request body once it
 * sees the first response bytes: everything the script writes before
 * FCGI_STDIN has ended is encoded as records and held, in memory up to
 * SPOOL_MEM_MAX and then in an unlinked temporary file. */
#include "config.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "fcgi_out.h"
#include "fcgi_record.h"

/* Largest payload of one record. */
#define RECORD_MAX 0xffff

void fcgi_out_init(struct fcgi_out *o, int fd, uint16_t request_id, const struct peer_wait *wait)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->request_id = request_id;
	o->wait = wait;
	o->holding = true;
	o->file_fd = -1;
}

void fcgi_out_free(struct fcgi_out *o)
{
	free(o->mem);
	o->mem = NULL;
	o->mem_len = 0;
	if (o->file_fd >= 0)
		close(o->file_fd);
	o->file_fd = -1;
}

/* Waits until fd can take bytes, as w allows.  Returns 0, or -1 with
 * errno ETIMEDOUT or ECANCELED. */
static int wait_writable(int fd, const struct peer_wait *w)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLOUT }, { .fd = w->cancel_fd, .events = POLLIN } };
	int timeout = w->progress_ms;

	if (w->deadline) {
		long long left = w->deadline - monotonic_ms();
		if (left < timeout)
			timeout = left > 0 ? (int)left : 0;
	}
	for (;;) {
		int rc = poll(pfd, w->cancel_fd >= 0 ? 2 : 1, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -1;
		if (rc > 0 && pfd[0].revents)
			return 0; /* writable, or an error sendmsg will report */
		errno = rc == 0 ? ETIMEDOUT : ECANCELED;
		return -1;
	}
}

int peer_send_all(int fd, struct iovec *iov, int iovcnt, const struct peer_wait *w)
{
	struct msghdr msg;

	while (iovcnt > 0) {
		ssize_t n;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)iovcnt;
		/* MSG_NOSIGNAL: a closed peer is EPIPE, not a signal. */
		n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (wait_writable(fd, w) < 0)
				return -1;
			continue;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int open_spool_file(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd;
	/* File systems without O_TMPFILE: create and unlink at once. */
	snprintf(path, sizeof(path), "%s/fcgiwrap-spool-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Appends bytes to the spool, moving it to disk when memory is full.
 * Returns 0, or -1 with errno (EFBIG past spool_max). */
static int spool_append(struct fcgi_out *o, const void *data, size_t len)
{
	if (o->spool_max && (uint64_t)o->mem_len + (uint64_t)o->file_len + len > o->spool_max) {
		errno = EFBIG;
		return -1;
	}
	if (o->file_fd < 0 && o->mem_len + len <= SPOOL_MEM_MAX) {
		if (!o->mem) {
			o->mem = malloc(SPOOL_MEM_MAX);
			if (!o->mem)
				return -1;
		}
		memcpy(o->mem + o->mem_len, data, len);
		o->mem_len += len;
		return 0;
	}
	if (o->file_fd < 0) {
		o->file_fd = open_spool_file();
		if (o->file_fd < 0)
			return -1;
		if (write_full(o->file_fd, o->mem, o->mem_len) < 0)
			return -1;
		o->file_len = (off_t)o->mem_len;
		free(o->mem);
		o->mem = NULL;
		o->mem_len = 0;
	}
	if (write_full(o->file_fd, data, len) < 0)
		return -1;
	o->file_len += (off_t)len;
	return 0;
}

static int emit(struct fcgi_out *o, struct iovec *iov, int iovcnt)
{
	if (o->error)
		return -1;
	if (o->holding) {
		for (int i = 0; i < iovcnt; i++) {
			if (spool_append(o, iov[i].iov_base, iov[i].iov_len) < 0) {
				o->error = o->spool_error = errno ? errno : ENOMEM;
				return -1;
			}
		}
		return 0;
	}
	if (peer_send_all(o->fd, iov, iovcnt, o->wait) < 0) {
		o->error = errno;
		return -1;
	}
	return 0;
}

/* Records sent with one sendmsg by fcgi_out_streamv (a 64 KiB read from
 * the script is two records: 65535 bytes and 1). */
#define BATCH_RECORDS 4

int fcgi_out_streamv(struct fcgi_out *o, int type, const struct iovec *parts, int nparts)
{
	size_t len = 0, off = 0; /* off: bytes of parts[0] already taken */

	for (int i = 0; i < nparts; i++)
		len += parts[i].iov_len;
	if (type == FCGI_STDERR && len > 0)
		o->stderr_used = true;
	if (type == FCGI_STDOUT)
		o->stdout_bytes += len;
	while (len > 0) {
		FCGI_Header h[BATCH_RECORDS];
		struct iovec iov[BATCH_RECORDS * (1 + FCGI_OUT_MAX_PARTS)];
		int n = 0;
		for (int rec = 0; rec < BATCH_RECORDS && len > 0; rec++) {
			size_t chunk = len > RECORD_MAX ? RECORD_MAX : len, left = chunk;
			fcgi_header_encode(&h[rec], (unsigned)type, o->request_id, chunk);
			iov[n].iov_base = &h[rec];
			iov[n++].iov_len = sizeof(h[rec]);
			/* This record's payload: the rest of the current part
			 * and as much of the following ones as fits. */
			while (left > 0) {
				size_t take = parts->iov_len - off;
				if (take > left)
					take = left;
				if (take > 0) {
					iov[n].iov_base = (char *)parts->iov_base + off;
					iov[n++].iov_len = take;
				}
				left -= take;
				off += take;
				if (off == parts->iov_len) {
					parts++;
					off = 0;
				}
			}
			len -= chunk;
		}
		if (emit(o, iov, n) < 0)
			return -1;
	}
	return 0;
}

int fcgi_out_stream(struct fcgi_out *o, int type, const void *data, size_t len)
{
	struct iovec part = { .iov_base = (void *)data, .iov_len = len };
	return fcgi_out_streamv(o, type, &part, 1);
}

int fcgi_out_release(struct fcgi_out *o, char *buf, size_t bufsize)
{
	if (!o->holding)
		return 0;
	o->holding = false;
	if (o->error)
		return -1;
	if (o->mem_len > 0) {
		struct iovec iov = { .iov_base = o->mem, .iov_len = o->mem_len };
		if (peer_send_all(o->fd, &iov, 1, o->wait) < 0) {
			o->error = errno;
			return -1;
		}
	}
	if (o->file_fd >= 0) {
		off_t off = 0;
		while (off < o->file_len) {
			ssize_t n = pread(o->file_fd, buf, bufsize, off);
			struct iovec iov;
			if (n <= 0) {
				o->error = n < 0 ? errno : EIO;
				return -1;
			}
			iov.iov_base = buf;
			iov.iov_len = (size_t)n;
			if (peer_send_all(o->fd, &iov, 1, o->wait) < 0) {
				o->error = errno;
				return -1;
			}
			off += n;
		}
	}
	fcgi_out_free(o);
	return 0;
}

void fcgi_out_discard(struct fcgi_out *o)
{
	o->holding = false;
	fcgi_out_free(o);
}

int fcgi_out_end_request(struct fcgi_out *o, uint32_t app_status, uint8_t protocol_status)
{
	FCGI_Header eof_out, eof_err;
	FCGI_EndRequestRecord end;
	struct iovec iov[3];
	int n = 0;

	/* Closing empty records: STDOUT always, STDERR only if it was used,
	 * as the specification asks (section 6.1). */
	if (protocol_status == FCGI_REQUEST_COMPLETE) {
		fcgi_header_encode(&eof_out, FCGI_STDOUT, o->request_id, 0);
		iov[n].iov_base = &eof_out;
		iov[n++].iov_len = sizeof(eof_out);
	}
	if (o->stderr_used) {
		fcgi_header_encode(&eof_err, FCGI_STDERR, o->request_id, 0);
		iov[n].iov_base = &eof_err;
		iov[n++].iov_len = sizeof(eof_err);
	}
	fcgi_end_request_encode(&end, o->request_id, app_status, protocol_status);
	iov[n].iov_base = &end;
	iov[n++].iov_len = sizeof(end);
	return emit(o, iov, n);
}

int fcgi_out_status(struct fcgi_out *o, const char *status_line, const char *type, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "Status: %s\r\nContent-Type: %s\r\n\r\n%s%s", status_line, type,
			 body ? "" : status_line, body ? "" : "\r\n");
	struct iovec parts[2] = { { .iov_base = head, .iov_len = (size_t)n },
				  { .iov_base = (char *)body, .iov_len = body ? strlen(body) : 0 } };

	return fcgi_out_streamv(o, FCGI_STDOUT, parts, 2);
}
