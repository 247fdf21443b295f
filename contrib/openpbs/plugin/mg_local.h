/*
 * The plugin's side of momgate's local protocol (docs/OPENPBS.md section 4,
 * the Check op in docs/PROTOCOL.md section 7): one request to the host's
 * momgate daemon over its Unix socket, one answer, bounded in time, on a
 * connection each thread keeps between requests.
 */
#ifndef MOMGATE_MG_LOCAL_H
#define MOMGATE_MG_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#define MG_DEFAULT_SOCKET "/run/momgate/pbs.sock"
#define MG_DEFAULT_TIMEOUT_MS 5000

enum { MG_OP_INITIATE = 1, MG_OP_CONTINUE = 2, MG_OP_ACCEPT = 3, MG_OP_CONFIRM = 4, MG_OP_CHECK = 5 };

/* The verdicts of a Check. */
enum { MG_VERDICT_VALID = 0, MG_VERDICT_REVOKED = 1, MG_VERDICT_UNCHANGED = 2 };

#define MG_ID_SIZE 16
#define MG_MAX_HOST 255
#define MG_MAX_USER 255
#define MG_MAX_NODE 64
#define MG_MAX_BODY 8192
#define MG_MAX_TOKEN 2048
#define MG_ERR_SIZE 1200
#define MG_KEY_SIZE 32

/* A request: which fields an op uses is in docs/OPENPBS.md. */
struct mg_request {
	int op;
	int kind;
	const char *host;
	const unsigned char *id; /* MG_ID_SIZE bytes */
	const unsigned char *token;
	size_t token_len;
	int encrypt; /* Initiate: ask for the connection's keys */
	uint64_t gen;	  /* Check: the generation of the last answer, 0 if none */
	const char *node; /* Check: the connection's node name; host is its address */
	int timeout_ms;	  /* at most this long, if > 0 and shorter than the plugin's timeout */
};

/* An answer. token points into body (valid until mg_response_free). */
struct mg_response {
	int refused;
	unsigned char id[MG_ID_SIZE];
	const unsigned char *token;
	size_t token_len;
	char peer_name[MG_MAX_NODE + 1];
	uint32_t uid, gid;
	char user[MG_MAX_USER + 1];
	char group[MG_MAX_USER + 1];
	char node[MG_MAX_NODE + 1];
	int has_keys; /* Continue, Confirm of an encrypted handshake */
	unsigned char send_key[MG_KEY_SIZE];
	unsigned char recv_key[MG_KEY_SIZE];
	uint64_t gen; /* Check */
	int verdict;  /* Check */
	char reason[33];
	char message[1025];
	unsigned char *body;
	size_t body_len;
};

/*
 * mg_ask sends q to the daemon and reads its answer into r. It returns 0
 * when an answer came (r->refused says whether it is a refusal), -1 when
 * none did, with the reason in err (at most MG_ERR_SIZE bytes).
 *
 * The request goes on this thread's connection to the daemon, opened at
 * the first request and kept for the next ones, unless this process, its
 * effective user or group, or the socket path is not the one it was
 * opened for (the daemon vouches for whoever connected: a forked child or
 * a process that changed user connects anew), or the daemon closed it.
 */
int mg_ask(const struct mg_request *q, struct mg_response *r, char *err, size_t errsz);

/* mg_response_free releases r's body and wipes the keys it may hold. */
void mg_response_free(struct mg_response *r);

#endif
