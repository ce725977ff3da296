/* SPDX-License-Identifier: MIT */
/*
 * zlib@wicket in the connection core.  The switch points (PROTOCOL.md):
 * the requester sends its GLOBAL_REQUEST and nothing after it until the
 * answer; the granter compresses everything it sends after its
 * REQUEST_SUCCESS and inflates everything it receives after the request.
 * The requester does the same from the packets after the answer on.  So
 * each side knows exactly where each direction changes, with no marker.
 */
#include "conn_z.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "wire.h"
#include "zpkt.h"

/* The wire queue may hold this much more than out's cap (compression grows random data a little). */
#define CONN_ZOUT_MAX (80u * 1024u * 1024u)

static int z_start(struct conn *c)
{
	c->ztx = zpkt_new(true);
	c->zrx = zpkt_new(false);
	if (!c->ztx || !c->zrx) {
		zpkt_free(c->ztx);
		zpkt_free(c->zrx);
		c->ztx = c->zrx = NULL;
		return -1;
	}
	buf_init(&c->zout, CONN_ZOUT_MAX);
	buf_init(&c->zin, WIRE_MAX_PACKET + 1);
	/* Payloads now pass through zlib: no splicing either way. */
	c->no_splice = true;
	c->dx_ok = false;
	return 0;
}

void conn_z_ask(struct conn *c)
{
	if (!zpkt_available())
		return;
	size_t s = conn_pkt_begin(c, MSG_GLOBAL_REQUEST);
	buf_cstr(&c->out, CONN_Z_REQUEST);
	buf_bool(&c->out, true);
	conn_pkt_end(c, s);
	c->z_asked = true;
	c->z_hold = buf_used(&c->out);
}

size_t conn_z_writable(const struct conn *c)
{
	return c->z_asked ? c->z_hold : SIZE_MAX;
}

struct buf *conn_z_wire(struct conn *c)
{
	return c->ztx ? &c->zout : &c->out;
}

int conn_z_answer(struct conn *c, bool ok)
{
	c->z_asked = false;
	if (!ok) {
		log_info("the peer does not compress (zlib@wicket refused): uncompressed");
		return 0;
	}
	if (c->sp_left || z_start(c) < 0) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "cannot start zlib@wicket");
		return -1;
	}
	/* What was held back was queued after the request: compressed.  Whatever
	 * of the request itself is unwritten goes first, as it is. */
	if (c->z_hold) {
		buf_put(&c->zout, buf_data(&c->out), c->z_hold);
		buf_consume(&c->out, c->z_hold);
	}
	c->z_raw_end = c->tx_bytes + c->z_hold;
	c->z_hold = 0;
	log_info("zlib@wicket on");
	return conn_z_pump(c);
}

int conn_z_grant(struct conn *c, bool want_reply)
{
	if (!c->cfg.accept_compress || !zpkt_available() || c->ztx || c->sp_left ||
	    !want_reply) {
		if (want_reply) {
			size_t s = conn_pkt_begin(c, MSG_REQUEST_FAILURE);
			conn_pkt_end(c, s);
		}
		return 0;
	}
	size_t s = conn_pkt_begin(c, MSG_REQUEST_SUCCESS);
	conn_pkt_end(c, s);
	/* Everything queued up to and including the reply goes as it is. */
	size_t raw = buf_used(&c->out);
	if (z_start(c) < 0) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "cannot start zlib@wicket");
		return -1;
	}
	buf_put(&c->zout, buf_data(&c->out), raw);
	buf_consume(&c->out, raw);
	c->z_raw_end = c->tx_bytes + raw;
	log_info("zlib@wicket on");
	return 0;
}

int conn_z_pump(struct conn *c)
{
	if (!c->ztx)
		return 0;
	while (buf_used(&c->out) >= 4) {
		uint32_t len = get_be32(buf_data(&c->out));
		if (buf_used(&c->out) - 4 < len)
			break; /* still being built */
		if (zpkt_deflate(c->ztx, buf_data(&c->out) + 4, len, &c->zout) < 0)
			return -1;
		buf_consume(&c->out, 4 + (size_t)len);
	}
	return 0;
}

int conn_z_inflate(struct conn *c, struct sv *pkt)
{
	if (!c->zrx)
		return 0;
	int r = zpkt_inflate(c->zrx, pkt->p, pkt->n, &c->zin, WIRE_MAX_PACKET);
	if (r == -EMSGSIZE) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "compressed packet too large");
		return -1;
	}
	if (r < 0 || !buf_used(&c->zin)) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed compressed data");
		return -1;
	}
	pkt->p = buf_data(&c->zin);
	pkt->n = buf_used(&c->zin);
	return 0;
}

void conn_z_free(struct conn *c)
{
	zpkt_free(c->ztx);
	zpkt_free(c->zrx);
	c->ztx = c->zrx = NULL;
	buf_free(&c->zout);
	buf_free(&c->zin);
}
