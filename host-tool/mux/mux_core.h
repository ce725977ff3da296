/* SPDX-License-Identifier: MIT */
/*
 * The translation table of a host-side mux: many clients, each speaking
 * bare ssh-connection to us as if we were the agent, share one stream to
 * the agent (PuTTY's connection sharing, with each client held to its own
 * channels).
 *
 * Channel numbers.  Every channel has one mux number M, which is both what
 * the guest knows as our end and what the client knows as the guest's end;
 * the client's own number C and the guest's G are rewritten to and from M.
 * So every message after CHANNEL_OPEN names M (direct index, O(1)), and a
 * client naming an M that is not its own is a protocol error of that client.
 *
 * What the core checks of a client, because the guest would otherwise fail
 * the whole shared stream for it: message framing and fields, its channels'
 * states (nothing after its CLOSE or on a channel not open yet), data within
 * the window and maximum packet the guest granted and not after its EOF,
 * windows that do not overflow, replies only to requests the guest made.
 * A violation ends that client only (DISCONNECT with the reason); its open
 * channels are closed towards the guest, pending opens are refused or
 * closed once answered, its forwards cancelled.
 *
 * Global requests go to the guest with want-reply forced on, and replies are
 * routed back by order (RFC 4254 4); zlib@wicket is refused (the mux alone
 * decides how its stream to the agent is compressed); tcpip-forward and
 * streamlocal-forward@openssh.com successes are remembered per client so the
 * guest's forwarded opens reach the client that asked.  Requests named
 * mux-*@wicket are answered by the mux itself (io->local_request).
 *
 * The core never blocks and never exits; output goes through struct mux_io.
 * Bounds: MUX_MAX_CHANNELS channels, MUX_MAX_GREQ pending global requests.
 */
#ifndef WICKET_MUX_CORE_H
#define WICKET_MUX_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MUX_MAX_CLIENTS 256
#define MUX_MAX_CHANNELS 4096
#define MUX_MAX_GREQ 1024
#define MUX_MAX_FWD 256
#define MUX_NONE UINT32_MAX

struct mux_io {
	/* One packet payload for the guest / for client @cl (framing is the caller's). */
	void (*to_guest)(void *ctx, const uint8_t *p, size_t n);
	void (*to_client)(void *ctx, unsigned cl, const uint8_t *p, size_t n);
	/* Client @cl broke the protocol: send DISCONNECT(@why), then drop it
	 * (the caller calls mux_core_client_gone() when it is gone). */
	void (*client_fail)(void *ctx, unsigned cl, const char *why);
	/*
	 * A mux-*@wicket request from @cl: return true and append fields to
	 * @reply for REQUEST_SUCCESS, false for REQUEST_FAILURE.
	 */
	bool (*local_request)(void *ctx, unsigned cl, struct sv name, struct rd *args,
			      struct buf *reply);
};

enum mux_cstate { MC_FREE = 0, MC_OPENING, MC_INCOMING, MC_OPEN };

struct mux_chan {
	uint8_t state;
	bool orphan;	     /* its client is gone: nothing goes to a client */
	bool c_close, g_close; /* CLOSE seen from (or sent for) the client / the guest */
	bool c_eof;
	uint32_t owner;	     /* client slot */
	uint32_t cid, gid;   /* the client's and the guest's numbers */
	uint32_t gwin, gmax; /* what the client may still send, and its packet limit */
	uint32_t cwin;	     /* what the guest may still send the client */
	uint32_t g_asks;     /* guest want-reply requests the client still owes */
	bool agent;	     /* its client asked for agent forwarding on it */
};

enum mux_greq_kind { MG_PLAIN, MG_TCPIP, MG_CANCEL_TCPIP, MG_STREAMLOCAL, MG_CANCEL_STREAMLOCAL,
		     MG_KEEPALIVE, MG_LOCAL };

struct mux_greq {
	uint32_t owner; /* client slot, or MUX_NONE (gone, or the mux's own) */
	uint8_t kind;
	bool want;	/* the client asked for a reply */
	char *addr;	/* forwards: bind address or socket path */
	uint32_t port;
	uint8_t *reply;	/* MG_LOCAL: the whole answer, sent when its turn comes */
	size_t reply_n;
};

struct mux_fwd {
	uint32_t owner;
	bool streamlocal;
	char *addr;
	uint32_t port;
};

struct mux_client_st {
	bool used;
	bool failed;	  /* got its DISCONNECT: input ignored until it is gone */
	uint32_t nchan;	  /* live channels it owns */
	uint32_t ngreq;	  /* its global requests awaiting the guest's reply */
	uint64_t rx, tx;  /* payload bytes from / to it */
};

struct mux_core {
	const struct mux_io *io;
	void *ctx;
	struct mux_chan *ch;
	uint32_t nch, nlive;
	struct mux_greq greq[MUX_MAX_GREQ];
	unsigned gq_head, gq_n;
	struct mux_fwd fwd[MUX_MAX_FWD];
	unsigned nfwd;
	struct mux_client_st cl[MUX_MAX_CLIENTS];
	unsigned ncl;
	struct buf scratch;
	uint64_t keepalive_sent, keepalive_answered;
	uint32_t max_packet; /* a slow line: maximum packets clamped to this (0: as they are) */
	char why[200]; /* guest protocol error, for the caller */
};

void mux_core_init(struct mux_core *m, const struct mux_io *io, void *ctx);
void mux_core_free(struct mux_core *m);

/* A new client: its slot, or -1 when MUX_MAX_CLIENTS are connected. */
int mux_core_client_add(struct mux_core *m);
/* Client @cl is gone (closed, died, failed): release what it held. */
void mux_core_client_gone(struct mux_core *m, unsigned cl);
/*
 * One packet payload from client @cl (rewritten in place).  0, or -1 when
 * the client is to be dropped (it disconnected, or broke the protocol and
 * io->client_fail has been called).
 */
int mux_core_from_client(struct mux_core *m, unsigned cl, uint8_t *p, size_t n);
/*
 * One packet payload from the guest (rewritten in place).  0, or -1 when the
 * guest broke the protocol or disconnected (m->why says what).
 */
int mux_core_from_guest(struct mux_core *m, uint8_t *p, size_t n);
/* Send keepalive@openssh.com to the guest (its reply is counted). */
void mux_core_keepalive(struct mux_core *m);

/* Live channels of client @cl, or of everyone (@cl MUX_NONE). */
uint32_t mux_core_channels(const struct mux_core *m, uint32_t cl);

/*
 * For a caller that moves a big CHANNEL_DATA payload itself (splice): the
 * checks and accounting mux_core_from_guest() / mux_core_from_client() do
 * for that message, given its header alone (channel @id, @dlen data bytes).
 *
 * mux_core_guest_data(): 0 with *@owner the client slot and *@cid its
 * channel number, or *@owner MUX_NONE when the payload is to be dropped
 * (its client is gone); -1 when the guest broke the protocol (m->why).
 * mux_core_client_data(): 0 with *@gid the guest's channel number, or -1
 * when the client is to be dropped (io->client_fail has been called).
 */
int mux_core_guest_data(struct mux_core *m, uint32_t id, uint32_t dlen, uint32_t *owner,
			uint32_t *cid);
int mux_core_client_data(struct mux_core *m, unsigned cl, uint32_t id, uint32_t dlen,
			 uint32_t *gid);

#endif
