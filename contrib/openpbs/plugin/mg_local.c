/*
 * The plugin's side of momgate's local protocol. No state survives a call:
 * each request opens its own connection, so the plugin is indifferent to
 * the threads of pbs_comm and the forks of pbs_mom.
 */
#define _GNU_SOURCE
#include "mg_local.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *socket_path(void)
{
	const char *p = getenv("MOMGATE_PBS_SOCKET");
	return (p != NULL && *p != '\0') ? p : MG_DEFAULT_SOCKET;
}

static int timeout_ms(void)
{
	const char *p = getenv("MOMGATE_PBS_TIMEOUT_MS");
	if (p != NULL && *p != '\0') {
		char *end = NULL;
		long v = strtol(p, &end, 10);
		if (end != NULL && *end == '\0' && v > 0 && v <= 600000)
			return (int) v;
	}
	return MG_DEFAULT_TIMEOUT_MS;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd polls fd for events until deadline; 0 ready, -1 with errno set. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&p, 1, (int) left);
		if (n > 0)
			return 0;
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/*
 * dial connects to the daemon's socket, within deadline, and checks who
 * answers: root, or the owner of the socket's directory, which nobody else
 * may write. Otherwise a local user could stand in for a daemon that is
 * down.
 */
static int dial(const char *path, long long deadline, char *err, size_t errsz)
{
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct stat st;
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errsz, "socket path %s is too long", path);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	while (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) { /* the daemon's backlog is full: wait a little, bounded */
			if (now_ms() >= deadline) {
				errno = ETIMEDOUT;
			} else {
				poll(NULL, 0, 5);
				continue;
			}
		}
		if (errno == EINPROGRESS) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (wait_fd(fd, POLLOUT, deadline) == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				break;
			if (soerr != 0)
				errno = soerr;
		}
		snprintf(err, errsz, "cannot reach the momgate daemon at %s: %s (is momgate-mom, or momgate-server on the server host, running with --pbs-socket?)",
			 path, strerror(errno));
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		snprintf(err, errsz, "socket %s: SO_PEERCRED: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) != 0) {
		snprintf(err, errsz, "socket directory %s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	if ((st.st_mode & 022) != 0) {
		snprintf(err, errsz, "socket directory %s is writable by group or others (mode %04o): refusing to trust %s", dir,
			 (unsigned) (st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	if (cred.uid != 0 && cred.uid != st.st_uid) {
		snprintf(err, errsz, "the process answering on %s runs as uid %u, neither root nor the owner (uid %u) of %s: refusing it",
			 path, (unsigned) cred.uid, (unsigned) st.st_uid, dir);
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const unsigned char *b, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w > 0) {
			b += w;
			n -= (size_t) w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) != 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

static int recv_all(int fd, unsigned char *b, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);
		if (r > 0) {
			b += r;
			n -= (size_t) r;
			continue;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(fd, POLLIN, deadline) != 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

static void put16(unsigned char *b, size_t v)
{
	b[0] = (unsigned char) (v >> 8);
	b[1] = (unsigned char) v;
}

static void put32(unsigned char *b, size_t v)
{
	b[0] = (unsigned char) (v >> 24);
	b[1] = (unsigned char) (v >> 16);
	b[2] = (unsigned char) (v >> 8);
	b[3] = (unsigned char) v;
}

/* encode writes q's frame into b (8 + MG_MAX_BODY bytes); -1 if q does
 * not fit. */
static long encode(const struct mg_request *q, unsigned char *b)
{
	size_t n = 8, hl;
	int has_host = q->op == MG_OP_INITIATE || q->op == MG_OP_ACCEPT;
	int has_id = q->op == MG_OP_CONTINUE || q->op == MG_OP_CONFIRM;

	if (!has_host && !has_id)
		return -1;
	if (has_host) {
		hl = strlen(q->host);
		if (hl == 0 || hl > MG_MAX_HOST)
			return -1;
		b[n++] = (unsigned char) q->kind;
		put16(b + n, hl);
		memcpy(b + n + 2, q->host, hl);
		n += 2 + hl;
	} else {
		memcpy(b + n, q->id, MG_ID_SIZE);
		n += MG_ID_SIZE;
	}
	if (q->op != MG_OP_INITIATE) {
		if (q->token_len > MG_MAX_TOKEN || n + 2 + q->token_len > 8 + MG_MAX_BODY)
			return -1;
		put16(b + n, q->token_len);
		if (q->token_len > 0)
			memcpy(b + n + 2, q->token, q->token_len);
		n += 2 + q->token_len;
	} else if (q->encrypt) {
		b[n++] = 2; /* encrypt: derive this connection's keys */
	}
	b[0] = 'M';
	b[1] = 'L';
	b[2] = 1;
	b[3] = (unsigned char) q->op;
	put32(b + 4, n - 8);
	return (long) n;
}

/* A cursor over a response body; the first failure sticks. */
struct cursor {
	const unsigned char *b;
	size_t n;
	int bad;
};

static const unsigned char *take(struct cursor *c, size_t n)
{
	const unsigned char *p;
	if (c->bad || c->n < n) {
		c->bad = 1;
		return NULL;
	}
	p = c->b;
	c->b += n;
	c->n -= n;
	return p;
}

static uint32_t get32(struct cursor *c)
{
	const unsigned char *p = take(c, 4);
	if (p == NULL)
		return 0;
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* bytes16 reads a length-prefixed field of at most max bytes. */
static const unsigned char *bytes16(struct cursor *c, size_t max, size_t *len)
{
	const unsigned char *p = take(c, 2);
	size_t n;
	if (p == NULL)
		return NULL;
	n = (size_t) p[0] << 8 | p[1];
	if (n > max) {
		c->bad = 1;
		return NULL;
	}
	*len = n;
	return take(c, n);
}

/* str copies a length-prefixed text field into dst (max + 1 bytes); NUL
 * bytes in it make the answer malformed. */
static void str(struct cursor *c, size_t max, char *dst)
{
	size_t n = 0;
	const unsigned char *p = bytes16(c, max, &n);
	dst[0] = '\0';
	if (p == NULL)
		return;
	if (memchr(p, 0, n) != NULL) {
		c->bad = 1;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static int decode(int op, int status, unsigned char *body, size_t n, struct mg_response *r)
{
	struct cursor c = {.b = body, .n = n};
	if (status == 1) {
		r->refused = 1;
		str(&c, 32, r->reason);
		str(&c, 1024, r->message);
	} else if (status != 0) {
		return -1;
	} else {
		switch (op) {
		case MG_OP_INITIATE:
		case MG_OP_ACCEPT: {
			const unsigned char *id = take(&c, MG_ID_SIZE);
			if (id != NULL)
				memcpy(r->id, id, MG_ID_SIZE);
			r->token = bytes16(&c, MG_MAX_TOKEN, &r->token_len);
			break;
		}
		case MG_OP_CONTINUE:
			r->token = bytes16(&c, MG_MAX_TOKEN, &r->token_len);
			str(&c, MG_MAX_NODE, r->peer_name);
			break;
		case MG_OP_CONFIRM:
			r->uid = get32(&c);
			r->gid = get32(&c);
			str(&c, MG_MAX_USER, r->user);
			str(&c, MG_MAX_USER, r->group);
			str(&c, MG_MAX_NODE, r->node);
			break;
		default:
			return -1;
		}
		/* The keys of an encrypted handshake end its last answer. */
		if ((op == MG_OP_CONTINUE || op == MG_OP_CONFIRM) && !c.bad && c.n == 2 * MG_KEY_SIZE) {
			memcpy(r->send_key, take(&c, MG_KEY_SIZE), MG_KEY_SIZE);
			memcpy(r->recv_key, take(&c, MG_KEY_SIZE), MG_KEY_SIZE);
			r->has_keys = 1;
		}
	}
	if (c.bad || c.n != 0)
		return -1;
	return 0;
}

int mg_ask(const struct mg_request *q, struct mg_response *r, char *err, size_t errsz)
{
	unsigned char out[8 + MG_MAX_BODY];
	unsigned char hdr[8];
	const char *path = socket_path();
	long long deadline = now_ms() + timeout_ms();
	long n;
	size_t blen;
	int fd;

	memset(r, 0, sizeof(*r));
	n = encode(q, out);
	if (n < 0) {
		snprintf(err, errsz, "request %d does not fit the local protocol (host or token too long)", q->op);
		return -1;
	}
	fd = dial(path, deadline, err, errsz);
	if (fd < 0)
		return -1;
	if (send_all(fd, out, (size_t) n, deadline) != 0 || recv_all(fd, hdr, sizeof(hdr), deadline) != 0) {
		snprintf(err, errsz, "momgate daemon at %s: %s", path,
			 errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
		close(fd);
		return -1;
	}
	blen = (size_t) hdr[4] << 24 | (size_t) hdr[5] << 16 | (size_t) hdr[6] << 8 | hdr[7];
	if (hdr[0] != 'M' || hdr[1] != 'L' || hdr[2] != 1 || blen > MG_MAX_BODY) {
		snprintf(err, errsz, "momgate daemon at %s: answer is not a momgate local frame", path);
		close(fd);
		return -1;
	}
	r->body = malloc(blen > 0 ? blen : 1);
	r->body_len = blen;
	if (r->body == NULL) {
		snprintf(err, errsz, "out of memory");
		close(fd);
		return -1;
	}
	if (recv_all(fd, r->body, blen, deadline) != 0) {
		snprintf(err, errsz, "momgate daemon at %s: %s", path,
			 errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
		close(fd);
		mg_response_free(r);
		return -1;
	}
	close(fd);
	if (decode(q->op, hdr[3], r->body, blen, r) != 0) {
		snprintf(err, errsz, "momgate daemon at %s: malformed answer", path);
		mg_response_free(r);
		return -1;
	}
	return 0;
}

void mg_response_free(struct mg_response *r)
{
	if (r->body != NULL)
		explicit_bzero(r->body, r->body_len);
	explicit_bzero(r->send_key, sizeof(r->send_key));
	explicit_bzero(r->recv_key, sizeof(r->recv_key));
	r->has_keys = 0;
	free(r->body);
	r->body = NULL;
	r->token = NULL;
	r->token_len = 0;
}
