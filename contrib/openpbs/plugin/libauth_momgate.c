/*
 * libauth_momgate.so: OpenPBS authentication by momgate (docs/OPENPBS.md).
 *
 * Each handshake step is one request to this host's momgate daemon, which
 * holds the cluster key and checks the other side's steps; the plugin only
 * carries tokens between PBS and the daemon and keeps, per connection, the
 * handshake id and, at the end, the peer's user and node name, and for an
 * encrypted connection its two record keys (section 6).
 */
#define _GNU_SOURCE
#include "libauth_abi.h"
#include "mg_local.h"
#include "mg_record.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The logger pbs_auth_set_config gives; PBS calls set_config from any
 * thread, always with the same function, so the store is atomic only to
 * be well defined. */
static void (*logger)(int, int, int, const char *, const char *);

/*
 * Whether PBS will encrypt the connection whose context this thread makes
 * next: PBS calls pbs_auth_set_config, then pbs_auth_create_ctx, in one
 * thread, with the configuration of that connection (its
 * PBS_ENCRYPT_METHOD). Per thread, so that two threads of pbs_comm setting
 * up connections at once do not see each other's.
 */
static __thread int next_ctx_encrypts;

/* One connection's handshake. */
struct mg_ctx {
	int responder; /* AUTH_SERVER or AUTH_INTERACTIVE: this side accepted */
	int kind;      /* 0 user, 1 service */
	int step;      /* calls made so far */
	int done;
	int encrypt; /* initiator: ask the daemon for this connection's keys */
	struct mg_direction send, recv;
	char host[MG_MAX_HOST + 1];
	unsigned char id[MG_ID_SIZE];
	char user[MG_MAX_USER + 1];
	char node[MG_MAX_NODE + 1];
	uint64_t checked_gen; /* responder: the generation its last check found it valid at */
};

/*
 * pbs_auth_check_ctx's view of the daemon: the generation it answered
 * last, and when. While that answer is younger than MG_CHECK_FRESH_MS, a
 * connection found valid at that generation is valid without asking, so a
 * quiet cluster costs pbs_comm about one request per period, whatever the
 * number of its connections and threads.
 */
#define MG_CHECK_FRESH_MS 1000
static pthread_mutex_t gen_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t gen_seen;
static long long gen_seen_at; /* monotonic ms; 0: never */

/*
 * A check waits for the daemon at most MG_CHECK_TIMEOUT_MS, and after one
 * that got no answer none asks for MG_CHECK_BACKOFF_MS: pbs_comm checks
 * its connections in its IO threads, which a daemon that hangs must not
 * hold for a timeout per connection.
 */
#define MG_CHECK_TIMEOUT_MS 1000
#define MG_CHECK_BACKOFF_MS 10000
static long long unreachable_until; /* monotonic ms; guarded by gen_mu */
static char unreachable_why[MG_ERR_SIZE + 64];

static void log_msg(int severity, const char *text)
{
	void (*f)(int, int, int, const char *, const char *) = __atomic_load_n(&logger, __ATOMIC_ACQUIRE);
	int type = severity == MG_LOG_DEBUG ? MG_PBSEVENT_DEBUG : MG_PBSEVENT_ERROR | MG_PBSEVENT_FORCE;
	if (f != NULL)
		f(type, MG_PBS_EVENTCLASS_SERVER, severity, "libauth_momgate", text);
	else if (severity != MG_LOG_DEBUG)
		fprintf(stderr, "libauth_momgate: %s\n", text);
}

/*
 * fail hands PBS the reason as error data: PBS logs it (pbs_comm, pbs_mom)
 * or prints it (commands), and sends it to the other side (IFL). A '%'
 * becomes ' ': TPP logs the text as a format string.
 */
static int fail(void **data_out, size_t *len_out, const char *msg)
{
	char buf[MG_ERR_SIZE + 16];
	char *p;
	snprintf(buf, sizeof(buf), "momgate: %s", msg);
	for (p = buf; *p != '\0'; p++)
		if (*p == '%')
			*p = ' ';
	*data_out = strdup(buf);
	*len_out = *data_out != NULL ? strlen(buf) : 0;
	return 1;
}

static int give(void **data_out, size_t *len_out, const unsigned char *b, size_t n)
{
	*data_out = malloc(n);
	if (*data_out == NULL)
		return fail(data_out, len_out, "out of memory");
	memcpy(*data_out, b, n);
	*len_out = n;
	return 0;
}

MG_EXPORT void pbs_auth_set_config(const mg_pbs_auth_config_t *config)
{
	__atomic_store_n(&logger, config != NULL ? config->logfunc : NULL, __ATOMIC_RELEASE);
	next_ctx_encrypts = config != NULL && config->encrypt_method != NULL && strcmp(config->encrypt_method, "momgate") == 0;
}

MG_EXPORT int pbs_auth_create_ctx(void **ctx, int mode, int conn_type, const char *hostname)
{
	struct mg_ctx *c;
	*ctx = NULL;
	if (mode != MG_AUTH_CLIENT && mode != MG_AUTH_SERVER && mode != MG_AUTH_INTERACTIVE) {
		log_msg(MG_LOG_ERR, "unknown authentication role");
		return 1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(MG_LOG_ERR, "out of memory");
		return 1;
	}
	c->responder = mode != MG_AUTH_CLIENT;
	c->kind = conn_type == MG_AUTH_SERVICE_CONN ? 1 : 0;
	c->encrypt = !c->responder && next_ctx_encrypts;
	mg_direction_init(&c->send);
	mg_direction_init(&c->recv);
	if (hostname != NULL)
		snprintf(c->host, sizeof(c->host), "%s", hostname);
	*ctx = c;
	return 0;
}

MG_EXPORT void pbs_auth_destroy_ctx(void *ctx)
{
	struct mg_ctx *c = ctx;
	if (c == NULL)
		return;
	mg_direction_wipe(&c->send);
	mg_direction_wipe(&c->recv);
	free(c);
}

MG_EXPORT int pbs_auth_get_userinfo(void *ctx, char **user, char **host, char **realm)
{
	struct mg_ctx *c = ctx;
	*user = NULL;
	*host = NULL;
	*realm = NULL;
	if (c == NULL || !c->done || !c->responder) {
		log_msg(MG_LOG_ERR, "no authenticated peer on this connection");
		return 1;
	}
	*user = strdup(c->user);
	if (c->node[0] != '\0')
		*host = strdup(c->node);
	if (*user == NULL || (c->node[0] != '\0' && *host == NULL)) {
		free(*user);
		free(*host);
		*user = NULL;
		*host = NULL;
		log_msg(MG_LOG_ERR, "out of memory");
		return 1;
	}
	return 0;
}

MG_EXPORT int pbs_auth_process_handshake_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out,
					      int *is_handshake_done)
{
	struct mg_ctx *c = ctx;
	struct mg_request q = {0};
	struct mg_response r;
	char err[MG_ERR_SIZE];
	int rc = 0;

	*data_out = NULL;
	*len_out = 0;
	*is_handshake_done = 0;
	if (c == NULL)
		return fail(data_out, len_out, "no authentication context");
	if (c->done || c->step >= 2)
		return fail(data_out, len_out, "handshake already finished");
	if ((c->responder || c->step > 0) && (data_in == NULL || len_in == 0))
		return fail(data_out, len_out, "no handshake data from the other side");
	q.kind = c->kind;
	q.host = c->host;
	q.id = c->id;
	q.token = data_in;
	q.token_len = len_in;
	q.encrypt = c->encrypt;
	if (!c->responder)
		q.op = c->step == 0 ? MG_OP_INITIATE : MG_OP_CONTINUE;
	else
		q.op = c->step == 0 ? MG_OP_ACCEPT : MG_OP_CONFIRM;
	if ((q.op == MG_OP_INITIATE || q.op == MG_OP_ACCEPT) && c->host[0] == '\0')
		return fail(data_out, len_out, "PBS gave no peer host for this connection");
	if (mg_ask(&q, &r, err, sizeof(err)) != 0)
		return fail(data_out, len_out, err);
	c->step++;
	if (r.refused) {
		snprintf(err, sizeof(err), "%s", r.message[0] != '\0' ? r.message : r.reason);
		mg_response_free(&r);
		return fail(data_out, len_out, err);
	}
	switch (q.op) {
	case MG_OP_INITIATE:
	case MG_OP_ACCEPT:
		memcpy(c->id, r.id, MG_ID_SIZE);
		rc = give(data_out, len_out, r.token, r.token_len);
		break;
	case MG_OP_CONTINUE:
		if (c->encrypt && !r.has_keys) {
			mg_response_free(&r);
			return fail(data_out, len_out, "the momgate daemon gave no keys for this encrypted connection (is it older than the plugin?)");
		}
		rc = give(data_out, len_out, r.token, r.token_len);
		snprintf(c->node, sizeof(c->node), "%s", r.peer_name);
		c->done = rc == 0;
		break;
	case MG_OP_CONFIRM:
		snprintf(c->user, sizeof(c->user), "%s", r.user);
		snprintf(c->node, sizeof(c->node), "%s", r.node);
		c->done = 1;
		snprintf(err, sizeof(err), "authenticated %s (%s) on node %s", r.user, c->kind ? "service" : "user", r.node);
		log_msg(MG_LOG_DEBUG, err);
		break;
	}
	if (rc == 0 && r.has_keys) {
		mg_direction_set(&c->send, r.send_key);
		mg_direction_set(&c->recv, r.recv_key);
	}
	mg_response_free(&r);
	*is_handshake_done = c->done;
	return rc;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* set_reason hands PBS a text it frees; a '%' becomes ' ' (PBS may log it
 * as a format string). */
static void set_reason(char **reason, const char *prefix, const char *text)
{
	char buf[MG_ERR_SIZE + 64], *p;
	snprintf(buf, sizeof(buf), "momgate: %s%s", prefix, text);
	for (p = buf; *p != '\0'; p++)
		if (*p == '%')
			*p = ' ';
	*reason = strdup(buf);
}

/*
 * pbs_auth_check_ctx: is the peer of this accepted, authenticated
 * connection still admitted (docs/PROTOCOL.md section 7)? An optional
 * symbol: a PBS that does not know it never calls it; patched pbs_comm
 * calls it periodically for each connection and closes those it revokes.
 * Returns 0 (still admitted, or nothing to check: an initiator's or an
 * unfinished context), 1 (revoked: *reason says why) or -1 (the daemon
 * could not be asked: *reason says why; PBS keeps the connection).
 * *reason is PBS's to free.
 */
MG_EXPORT int pbs_auth_check_ctx(void *ctx, char **reason)
{
	struct mg_ctx *c = ctx;
	struct mg_request q = {0};
	struct mg_response r;
	char err[MG_ERR_SIZE + 64];
	long long now = mono_ms();
	uint64_t g;
	int fresh;

	*reason = NULL;
	if (c == NULL || !c->done || !c->responder || c->node[0] == '\0' || c->host[0] == '\0')
		return 0;
	pthread_mutex_lock(&gen_mu);
	g = gen_seen;
	fresh = gen_seen_at != 0 && now - gen_seen_at < MG_CHECK_FRESH_MS;
	if (now < unreachable_until) {
		snprintf(err, sizeof(err), "%s", unreachable_why);
		pthread_mutex_unlock(&gen_mu);
		set_reason(reason, "cannot check the connection: ", err);
		return -1;
	}
	pthread_mutex_unlock(&gen_mu);
	if (fresh && c->checked_gen != 0 && c->checked_gen == g)
		return 0;
	q.op = MG_OP_CHECK;
	q.gen = c->checked_gen;
	q.node = c->node;
	q.host = c->host;
	q.timeout_ms = MG_CHECK_TIMEOUT_MS;
	if (mg_ask(&q, &r, err, sizeof(err)) != 0) {
		pthread_mutex_lock(&gen_mu);
		unreachable_until = mono_ms() + MG_CHECK_BACKOFF_MS;
		snprintf(unreachable_why, sizeof(unreachable_why), "%.*s (not asked again for %d s)", MG_ERR_SIZE - 1, err, MG_CHECK_BACKOFF_MS / 1000);
		pthread_mutex_unlock(&gen_mu);
		set_reason(reason, "cannot check the connection: ", err);
		return -1;
	}
	if (r.refused) {
		set_reason(reason, "cannot check the connection: ", r.message[0] != '\0' ? r.message : r.reason);
		mg_response_free(&r);
		return -1;
	}
	pthread_mutex_lock(&gen_mu);
	gen_seen = r.gen;
	gen_seen_at = now;
	pthread_mutex_unlock(&gen_mu);
	if (r.verdict == MG_VERDICT_REVOKED) {
		set_reason(reason, "", r.message[0] != '\0' ? r.message : r.reason);
		mg_response_free(&r);
		return 1;
	}
	c->checked_gen = r.gen;
	mg_response_free(&r);
	return 0;
}

/*
 * seal_or_open runs one record operation for PBS; a failure is logged
 * (PBS then drops the connection) and leaves no output.
 */
static int seal_or_open(void *ctx, int seal, void *data_in, size_t len_in, void **data_out, size_t *len_out)
{
	struct mg_ctx *c = ctx;
	char err[512], msg[MG_ERR_SIZE + 512];
	int rc;

	*data_out = NULL;
	*len_out = 0;
	if (c == NULL || !c->done) {
		log_msg(MG_LOG_ERR, seal ? "encrypt: no authenticated momgate connection" : "decrypt: no authenticated momgate connection");
		return 1;
	}
	if (seal)
		rc = mg_seal(&c->send, data_in, len_in, data_out, len_out, err, sizeof(err));
	else
		rc = mg_open(&c->recv, data_in, len_in, data_out, len_out, err, sizeof(err));
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "%s (connection with %s): %s", seal ? "encrypt" : "decrypt",
			 c->node[0] != '\0' ? c->node : c->host, err);
		log_msg(MG_LOG_ERR, msg);
		return 1;
	}
	return 0;
}

MG_EXPORT int pbs_auth_encrypt_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out)
{
	return seal_or_open(ctx, 1, data_in, len_in, data_out, len_out);
}

MG_EXPORT int pbs_auth_decrypt_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out)
{
	return seal_or_open(ctx, 0, data_in, len_in, data_out, len_out);
}
