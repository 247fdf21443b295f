/*
 * The plugin's side of momgate's local protocol. The only state that
 * survives a call is each thread's connection to the daemon, which is
 * opened anew after a fork, a change of effective user or group, or a
 * change of socket path, so that the daemon's SO_PEERCRED of it is always
 * the caller's: the threads of pbs_comm each have their own, and a forked
 * pbs_mom child never uses its parent's.
 */
#define _GNU_SOURCE
#include "mg_local.h"

#include <errno.h>
#include <pthread.h>
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

static void put64(unsigned char *b, uint64_t v)
{
	put32(b, (size_t) (v >> 32));
	put32(b + 4, (size_t) (v & 0xffffffffu));
}

/* encode_check writes a Check's frame into b; -1 if it does not fit. */
static long encode_check(const struct mg_request *q, unsigned char *b)
{
	size_t n = 8, nl = q->node != NULL ? strlen(q->node) : 0, hl = q->host != NULL ? strlen(q->host) : 0;
	if (nl == 0 || nl > MG_MAX_NODE || hl == 0 || hl > MG_MAX_HOST)
		return -1;
	put64(b + n, q->gen);
	n += 8;
	put16(b + n, nl);
	memcpy(b + n + 2, q->node, nl);
	n += 2 + nl;
	put16(b + n, hl);
	memcpy(b + n + 2, q->host, hl);
	n += 2 + hl;
	b[0] = 'M';
	b[1] = 'L';
	b[2] = 1;
	b[3] = MG_OP_CHECK;
	put32(b + 4, n - 8);
	return (long) n;
}

/* encode writes q's frame into b (8 + MG_MAX_BODY bytes); -1 if q does
 * not fit. */
static long encode(const struct mg_request *q, unsigned char *b)
{
	size_t n = 8, hl;
	int has_host = q->op == MG_OP_INITIATE || q->op == MG_OP_ACCEPT;
	int has_id = q->op == MG_OP_CONTINUE || q->op == MG_OP_CONFIRM;

	if (q->op == MG_OP_CHECK)
		return encode_check(q, b);
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
		case MG_OP_CHECK: {
			const unsigned char *v;
			r->gen = (uint64_t) get32(&c) << 32;
			r->gen |= get32(&c);
			v = take(&c, 1);
			r->verdict = v != NULL ? v[0] : -1;
			str(&c, 32, r->reason);
			str(&c, 1024, r->message);
			/* a revoked verdict, and only it, has a reason */
			if (r->verdict < MG_VERDICT_VALID || r->verdict > MG_VERDICT_UNCHANGED ||
			    (r->verdict == MG_VERDICT_REVOKED) != (r->reason[0] != '\0') ||
			    (r->verdict != MG_VERDICT_REVOKED && r->message[0] != '\0'))
				c.bad = 1;
			break;
		}
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

/*
 * This thread's connection to the daemon and whom it was opened for. A
 * child of fork() inherits its parent's thread's copy: the pid tells.
 */
struct mg_conn {
	int fd;
	pid_t pid;
	uid_t euid;
	gid_t egid;
	char path[108];
	struct mg_conn *prev, *next; /* every thread's record (all_conns) */
};

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static int conn_key_ok;

/*
 * Every thread's record, so that a child of fork() closes them all at
 * once: it inherits the descriptors of all its parent's threads, and none
 * of them is its to use (the daemon vouched for the parent; the child may
 * drop privileges next). The pid check of reusable() is the second line.
 */
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mg_conn *all_conns;

static void conns_lock(void) { pthread_mutex_lock(&conns_mu); }
static void conns_unlock(void) { pthread_mutex_unlock(&conns_mu); }

static void conns_child(void)
{
	struct mg_conn *c;
	for (c = all_conns; c != NULL; c = c->next) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
	pthread_mutex_unlock(&conns_mu);
}

/* conn_free closes a thread's connection when the thread ends. */
static void conn_free(void *p)
{
	struct mg_conn *c = p;
	conns_lock();
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		all_conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	conns_unlock();
	if (c->fd >= 0 && c->pid == getpid())
		close(c->fd);
	free(c);
}

static void conn_key_init(void)
{
	conn_key_ok = pthread_key_create(&conn_key, conn_free) == 0 &&
		      pthread_atfork(conns_lock, conns_unlock, conns_child) == 0;
}

/* Unloaded (PBS's unload_auths at exit): no thread may run conn_free,
 * which goes away with the library, after this. */
__attribute__((destructor)) static void conn_key_fini(void)
{
	if (conn_key_ok)
		pthread_key_delete(conn_key);
	conn_key_ok = 0;
}

/* this_conn is the calling thread's connection record (fd -1: none), or
 * NULL if the thread cannot have one; then every request has its own. */
static struct mg_conn *this_conn(void)
{
	struct mg_conn *c;
	pthread_once(&conn_once, conn_key_init);
	if (!conn_key_ok)
		return NULL;
	c = pthread_getspecific(conn_key);
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return NULL;
		c->fd = -1;
		if (pthread_setspecific(conn_key, c) != 0) {
			free(c);
			return NULL;
		}
		conns_lock();
		c->next = all_conns;
		if (all_conns != NULL)
			all_conns->prev = c;
		all_conns = c;
		conns_unlock();
	}
	return c;
}

/*
 * reusable says whether c may carry the next request of this caller to
 * path: opened by this process, for this effective user and group, to
 * this path. Otherwise it is closed (only this process's descriptor: a
 * parent's connection stays the parent's). A connection the daemon has
 * closed since (idle, or at its limit) is found by the request itself,
 * which then goes once more on a new one (mg_ask).
 */
static int reusable(struct mg_conn *c, const char *path)
{
	if (c->fd < 0)
		return 0;
	if (c->pid == getpid() && c->euid == geteuid() && c->egid == getegid() && strcmp(c->path, path) == 0)
		return 1;
	close(c->fd);
	c->fd = -1;
	return 0;
}

/*
 * exchange sends the request out (n bytes) on fd and reads the answer's
 * header into hdr and its body into r; 0, or -1 with errno set, *got_any
 * saying whether any byte of an answer came and *bad_frame whether what
 * came is not a local frame. The answer is read as it arrives (a wait,
 * then as much as the socket holds), not field by field: two system
 * calls for an answer, where a read per field took four or five.
 */
static int exchange(int fd, const unsigned char *out, size_t n, unsigned char *hdr, struct mg_response *r, long long deadline,
		    int *got_any, int *bad_frame)
{
	unsigned char in[8 + MG_MAX_BODY];
	size_t have = 0, want = 8, blen = 0;
	*got_any = 0;
	*bad_frame = 0;
	if (send_all(fd, out, n, deadline) != 0)
		return -1;
	while (have < want) {
		ssize_t got;
		if (wait_fd(fd, POLLIN, deadline) != 0)
			return -1;
		got = recv(fd, in + have, sizeof(in) - have, 0);
		if (got == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -1;
		}
		*got_any = 1;
		have += (size_t) got;
		if (want == 8 && have >= 8) {
			blen = (size_t) in[4] << 24 | (size_t) in[5] << 16 | (size_t) in[6] << 8 | in[7];
			if (in[0] != 'M' || in[1] != 'L' || in[2] != 1 || blen > MG_MAX_BODY) {
				*bad_frame = 1;
				return -1;
			}
			want = 8 + blen;
		}
	}
	/* The daemon answers one request with one frame, nothing more. */
	if (have != want) {
		*bad_frame = 1;
		explicit_bzero(in, have);
		return -1;
	}
	memcpy(hdr, in, 8);
	r->body = malloc(blen > 0 ? blen : 1);
	r->body_len = blen;
	if (r->body == NULL) {
		explicit_bzero(in, have);
		errno = ENOMEM;
		return -1;
	}
	memcpy(r->body, in + 8, blen);
	explicit_bzero(in, have); /* it may hold a connection's keys */
	return 0;
}

int mg_ask(const struct mg_request *q, struct mg_response *r, char *err, size_t errsz)
{
	unsigned char out[8 + MG_MAX_BODY];
	unsigned char hdr[8];
	const char *path = socket_path();
	int limit = q->timeout_ms > 0 && q->timeout_ms < timeout_ms() ? q->timeout_ms : timeout_ms();
	long long deadline = now_ms() + limit;
	struct mg_conn *conn = this_conn();
	struct mg_conn once = {.fd = -1};
	long n;
	int fd, reused, got_any, bad_frame, attempt;

	memset(r, 0, sizeof(*r));
	n = encode(q, out);
	if (n < 0) {
		snprintf(err, errsz, "request %d does not fit the local protocol (host or token too long)", q->op);
		return -1;
	}
	if (conn == NULL)
		conn = &once;
	/*
	 * A kept connection the daemon closed just now (idle, or at its
	 * limit of requests) fails before any answer arrives: then, once,
	 * on a new connection. The daemon did not read that request, or it
	 * answers a retried step as a replay: a refusal, never an admission.
	 */
	for (attempt = 0;; attempt++) {
		reused = reusable(conn, path);
		if (!reused) {
			fd = dial(path, deadline, err, errsz);
			if (fd < 0)
				return -1;
			conn->fd = fd;
			conn->pid = getpid();
			conn->euid = geteuid();
			conn->egid = getegid();
			snprintf(conn->path, sizeof(conn->path), "%s", path);
		}
		if (exchange(conn->fd, out, (size_t) n, hdr, r, deadline, &got_any, &bad_frame) == 0)
			break;
		close(conn->fd);
		conn->fd = -1;
		if (r->body != NULL)
			explicit_bzero(r->body, r->body_len);
		free(r->body);
		r->body = NULL;
		if (bad_frame) {
			snprintf(err, errsz, "momgate daemon at %s: answer is not a momgate local frame", path);
			return -1;
		}
		if (reused && !got_any && attempt == 0 && errno != ETIMEDOUT)
			continue;
		snprintf(err, errsz, "momgate daemon at %s: %s", path, errno == ETIMEDOUT ? "no answer in time" : strerror(errno));
		return -1;
	}
	if (conn == &once) {
		close(once.fd);
	}
	if (decode(q->op, hdr[3], r->body, r->body_len, r) != 0) {
		snprintf(err, errsz, "momgate daemon at %s: malformed answer", path);
		/* whatever follows on this connection is not to be trusted */
		if (conn->fd >= 0 && conn != &once) {
			close(conn->fd);
			conn->fd = -1;
		}
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
