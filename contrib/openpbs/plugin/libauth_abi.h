/*
 * The OpenPBS authentication plugin ABI as libauth_momgate.so implements it:
 * the values and the layout the loader (PBS_EXEC/lib/libauth_<name>.so, see
 * OpenPBS's src/include/libauth.h) expects. Written for momgate from the
 * documented interface, so that the plugin builds without the OpenPBS tree.
 */
#ifndef MOMGATE_LIBAUTH_ABI_H
#define MOMGATE_LIBAUTH_ABI_H

#include <stddef.h>

/* Roles passed to pbs_auth_create_ctx. */
enum {
	MG_AUTH_CLIENT = 1,      /* the side that starts the handshake */
	MG_AUTH_SERVER = 2,      /* the side that accepted the connection */
	MG_AUTH_INTERACTIVE = 3, /* qsub -I accepting an execution host */
};

/* Connection types passed to pbs_auth_create_ctx. */
enum {
	MG_AUTH_USER_CONN = 0,    /* a command to pbs_server */
	MG_AUTH_SERVICE_CONN = 1, /* a daemon to pbs_comm (TPP) */
};

/* Event types, class and severities of PBS's log function. */
enum {
	MG_PBSEVENT_ERROR = 0x0001,
	MG_PBSEVENT_SECURITY = 0x0020,
	MG_PBSEVENT_DEBUG = 0x0080,
	MG_PBSEVENT_FORCE = 0x8000,
	MG_PBS_EVENTCLASS_SERVER = 1,
	MG_LOG_ERR = 3,
	MG_LOG_INFO = 6,
	MG_LOG_DEBUG = 7,
};

/* What pbs_auth_set_config is given (same layout as PBS's). */
typedef struct mg_pbs_auth_config {
	char *pbs_home_path;
	char *pbs_exec_path;
	char *auth_method;
	char *encrypt_method;
	void (*logfunc)(int type, int objclass, int severity, const char *objname, const char *text);
} mg_pbs_auth_config_t;

#define MG_EXPORT __attribute__((visibility("default")))

MG_EXPORT void pbs_auth_set_config(const mg_pbs_auth_config_t *config);
MG_EXPORT int pbs_auth_create_ctx(void **ctx, int mode, int conn_type, const char *hostname);
MG_EXPORT void pbs_auth_destroy_ctx(void *ctx);
MG_EXPORT int pbs_auth_get_userinfo(void *ctx, char **user, char **host, char **realm);
MG_EXPORT int pbs_auth_process_handshake_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out,
					      int *is_handshake_done);
/* momgate's own, optional: patched pbs_comm's periodic check of an open
 * connection (docs/PROTOCOL.md section 7); 0 admitted, 1 revoked, -1
 * could not check; *reason is malloc'd. */
MG_EXPORT int pbs_auth_check_ctx(void *ctx, char **reason);
MG_EXPORT int pbs_auth_encrypt_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out);
MG_EXPORT int pbs_auth_decrypt_data(void *ctx, void *data_in, size_t len_in, void **data_out, size_t *len_out);

#endif
