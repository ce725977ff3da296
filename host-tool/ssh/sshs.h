/* SPDX-License-Identifier: MIT */
/*
 * The SSH server side of the host tool's wrapper: transport (RFC 4253),
 * user authentication (RFC 4252/4256) and a verbatim relay of the
 * connection layer to a guest that speaks bare ssh-connection.
 * One struct sshs per client connection; single-threaded, poll-driven.
 */
#ifndef WICKET_SSH_SSHS_H
#define WICKET_SSH_SSHS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "buf.h"
#include "cipher.h"
#include "tp.h"

#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#include "authkeys.h"
#include "sshkey.h"

/* SSH transport/userauth message numbers (RFC 4250 4.1.2). */
enum {
	SSH_MSG_SERVICE_REQUEST = 5,
	SSH_MSG_SERVICE_ACCEPT = 6,
	SSH_MSG_EXT_INFO = 7,
	SSH_MSG_KEXINIT = 20,
	SSH_MSG_NEWKEYS = 21,
	SSH_MSG_KEX_ECDH_INIT = 30,
	SSH_MSG_KEX_ECDH_REPLY = 31,
	SSH_MSG_USERAUTH_REQUEST = 50,
	SSH_MSG_USERAUTH_FAILURE = 51,
	SSH_MSG_USERAUTH_SUCCESS = 52,
	SSH_MSG_USERAUTH_BANNER = 53,
	SSH_MSG_USERAUTH_PK_OK = 60,
	SSH_MSG_USERAUTH_INFO_REQUEST = 60,
	SSH_MSG_USERAUTH_INFO_RESPONSE = 61,
};

enum {
	SSH_DISC_PROTOCOL_ERROR = 2,
	SSH_DISC_KEY_EXCHANGE_FAILED = 3,
	SSH_DISC_MAC_ERROR = 5,
	SSH_DISC_SERVICE_NOT_AVAILABLE = 7,
	SSH_DISC_BY_APPLICATION = 11,
	SSH_DISC_TOO_MANY_CONNECTIONS = 12,
	SSH_DISC_NO_MORE_AUTH_METHODS = 14,
};

/* Largest packet_length we accept or send (OpenSSH's PACKET_MAX_SIZE). */
#define SSH_MAX_PACKET (256u * 1024u)
/* Largest payload we relay: leaves room for padding within SSH_MAX_PACKET. */
#define SSH_MAX_PAYLOAD (SSH_MAX_PACKET - 1024u)

/* Results of the privileged operations below. */
enum {
	SSH_PRIV_FATAL = -2,   /* the authority is gone or refused to go on: end */
	SSH_PRIV_REFUSED = -1, /* an ordinary authentication failure */
	SSH_PRIV_PK_OK = 0,    /* publickey query without signature: key acceptable */
	SSH_PRIV_OK = 1,       /* authenticated */
};

/* A publickey userauth request, as the client sent it (RFC 4252 7). */
struct ssh_pubkey_req {
	struct sv user, service, algo, blob, sig;
	bool has_sig;
};

/*
 * What the transport may not do itself: everything that needs the host
 * private key, authorized_keys, the token file or the guest.  The network
 * process asks the monitor (privsep.h); the fuzzer calls the authority in
 * process (authority.h).  The authority, not the caller, decides whether a
 * user is authenticated and hands out the guest only after that.
 */
struct ssh_priv_ops {
	/* Sign an exchange hash as host key algorithm @algo (the first is the session id). */
	int (*sign)(void *ctx, struct sv algo, const uint8_t h[32], struct buf *sig);
	/* SSH_PRIV_*; on SSH_PRIV_OK *opts is the matching line's (authkeys_opts_clear). */
	int (*pubkey)(void *ctx, const struct ssh_pubkey_req *rq, struct authkeys_opts *opts);
	/* keyboard-interactive one-time token: SSH_PRIV_OK / REFUSED / FATAL. */
	int (*token)(void *ctx, struct sv user, struct sv response);
	/* "none" (stdio proxy mode only). */
	int (*none)(void *ctx, struct sv user);
	/* After success: the guest stream; *greeted when our greeting line was sent. 0 or -1. */
	int (*open_guest)(void *ctx, struct tp *out, bool *greeted);
};

/* Where the client came from, for the guest's SSH_CONNECTION and SSH_CLIENT
 * ("UNKNOWN" and 65535 when the stream is no TCP socket, as sshd -i). */
struct ssh_conn_info {
	char caddr[64], saddr[64];
	uint32_t cport, sport;
};

/* Fill @ci from the socket @fd (getpeername/getsockname), or UNKNOWN 65535. */
void ssh_conn_info_of(int fd, struct ssh_conn_info *ci);

struct ssh_server_cfg {
	struct sv host_blob[SSHKEY_NTYPES]; /* public host key blobs (K_S) by
					  * enum sshkey_type; empty: no such key */
	bool has_authkeys;		 /* publickey auth possible */
	bool has_token;			 /* keyboard-interactive one-time token */
	bool allow_none;		 /* stdio proxy mode: local user owns us */
	bool log_preauth;		 /* a close before authentication at warning
					  * level (serve), else at info */
	const struct ssh_priv_ops *priv;
	void *priv_ctx;
	FILE *pktlog;
	const char *peer_addr;		 /* for logs ("UNKNOWN" on stdio) */
	struct ssh_conn_info conn;	 /* sent to the guest (ssh-connection@wicket) */
	int grace_seconds;		 /* 0: no login grace limit */
	uint64_t rekey_bytes;		 /* 0: default */
	unsigned rekey_seconds;		 /* 0: default */
};

/* One direction of the packet protocol. */
struct ssh_dir {
	struct ssh_cipher c;
	uint32_t seq;
	uint64_t bytes; /* since the last key exchange */
	bool zlib;	/* zlib@openssh.com negotiated (active after auth) */
	bool zon;	/* compressing now */
#ifdef HAVE_ZLIB
	z_stream z;
	bool zinit, zdeflate;
#endif
};

/* Keys negotiated but not yet in use (waiting for NEWKEYS). */
struct ssh_newkeys {
	const struct cipher_info *enc;
	const struct mac_info *mac; /* NULL with an AEAD cipher */
	uint8_t key[64];
	uint8_t iv[CIPHER_IV_MAX];
	uint8_t mackey[MAC_KEY_MAX];
	bool zlib;
};

/* Global request replies we owe the client, in order. */
struct sshs {
	const struct ssh_server_cfg *cfg;
	int crfd, cwfd;
	struct buf cin, cout;
	struct ssh_dir rx, tx;
	char peer_version[256];
	bool version_done;
	size_t rx_need; /* packet length known for the packet at cin's head */

	/* key exchange */
	struct buf ic, is; /* KEXINIT payloads: client's, ours */
	uint8_t session_id[32];
	bool have_session_id;
	bool kex_sent, kex_rcvd, newkeys_sent, first_kex_done;
	bool strict, ext_info_c, skip_guess;
	int hostalg;		/* index into kex.c's host key algorithms */
	char hostalgs[128];	/* those we offer, comma-separated */
	unsigned kex_count;
	struct ssh_newkeys nk_rx, nk_tx;
	time_t kex_time;
	struct buf pending; /* packets held while our KEXINIT is out: u32 len + payload */
	uint8_t padpool[256];

	/* user authentication */
	bool service_ok, authed, kbd_pending;
	unsigned auth_failures;
	char user[128];
	char end_why[256]; /* why the connection ended (the first reason seen) */
	struct authkeys_opts opts;
	bool have_opts;
	time_t started;

	/* the guest */
	struct tp guest;
	bool guest_open, guest_greeted, guest_eof;
	struct buf gin, gout;

	struct buf scratch; /* compressed output */
	struct buf rxz;	    /* decompressed input */
	bool closing; /* DISCONNECT queued: flush and end */
	bool client_eof;
	int exit_code;
};

/* transport.c */
void ssh_send(struct sshs *s, const uint8_t *payload, size_t n);
/* Build a payload in s->scratch-free writer, then ssh_send_buf(). */
void ssh_send_buf(struct sshs *s, struct buf *b);
void ssh_disconnect(struct sshs *s, uint32_t reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool ssh_in_kex(const struct sshs *s);
void ssh_pkt_begin(struct buf *b, uint8_t type);
/* Serve one client on @rfd/@wfd until it is gone; 0, or non-zero after an error. */
int sshs_run(const struct ssh_server_cfg *cfg, int rfd, int wfd);
/* The state sshs_run() starts from (our version line queued); NULL on failure. */
struct sshs *sshs_new(const struct ssh_server_cfg *cfg, int rfd, int wfd);

/* kex.c */
void kex_send_init(struct sshs *s);
int kex_on_kexinit(struct sshs *s, struct sv payload);
int kex_on_ecdh_init(struct sshs *s, struct rd *r);
int kex_on_newkeys(struct sshs *s);
void kex_after_newkeys_sent(struct sshs *s);
void kex_wipe(struct sshs *s);
/* Run every primitive once, so libcrypto loads what it needs before a sandbox. */
int kex_prewarm(void);

/* compress.c */
int comp_start(struct ssh_dir *d, bool out);
void comp_end(struct ssh_dir *d);
/* Deflate @n bytes at @p into @out; 0 or -1. */
int comp_deflate(struct ssh_dir *d, const uint8_t *p, size_t n, struct buf *out);
int comp_inflate(struct ssh_dir *d, const uint8_t *p, size_t n, struct buf *out);

/* userauth.c */
int auth_on_service_request(struct sshs *s, struct rd *r);
int auth_on_request(struct sshs *s, struct rd *r);
int auth_on_info_response(struct sshs *s, struct rd *r);
void auth_wipe(struct sshs *s);

/* relay.c */
int relay_open_guest(struct sshs *s);
/* A connection-layer message from the client. */
int relay_from_client(struct sshs *s, struct sv payload);
/* Process buffered guest bytes; 0 ok, -1 the guest misbehaved (disconnected). */
int relay_from_guest(struct sshs *s);


#endif
