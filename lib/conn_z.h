/* SPDX-License-Identifier: MIT */
/* zlib@wicket inside the connection core: lib/conn.c's private hooks. */
#ifndef WICKET_CONN_Z_H
#define WICKET_CONN_Z_H

#include <stdbool.h>

#include "conn.h"

/* Name of the global request that switches compression on. */
#define CONN_Z_REQUEST "zlib@wicket"
/* Name of the global request that asks an agent for its line rate. */
#define CONN_LINE_RATE_REQUEST "line-rate@wicket"

/* Client: queue the request after the greeting and hold what follows. */
void conn_z_ask(struct conn *c);
/* Client: the answer to our request arrived; 0, or -1 after failing @c. */
int conn_z_answer(struct conn *c, bool ok);
/* Server: a request for zlib@wicket; queues the reply.  0, or -1 after failing @c. */
int conn_z_grant(struct conn *c, bool want_reply);
/* Bytes of out that may be written now (the hold), or SIZE_MAX. */
size_t conn_z_writable(const struct conn *c);
/* The wire queue: zout once compressing, else out. */
struct buf *conn_z_wire(struct conn *c);
/* Compress every whole packet of out into zout; 0, or -1 (out of memory). */
int conn_z_pump(struct conn *c);
/* Inflate @pkt in place of itself (into zin); 0, or -1 after failing @c. */
int conn_z_inflate(struct conn *c, struct sv *pkt);
void conn_z_free(struct conn *c);

#endif
