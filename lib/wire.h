/* SPDX-License-Identifier: MIT */
/*
 * Bare ssh-connection framing: one greeting line each way, then packets of
 * uint32 length + payload (first payload byte is the message number).
 */
#ifndef WICKET_WIRE_H
#define WICKET_WIRE_H

#include "buf.h"

#define WIRE_GREETING_PREFIX "SSHCONNECTION@putty.projects.tartarus.org-2.0-"
/* Largest packet we accept (length field value). */
#define WIRE_MAX_PACKET (256u * 1024u)
/* The software-version part of a greeting line is bounded like RFC 4253's. */
#define WIRE_MAX_VERSION 200

/*
 * wire_scan_greeting() - find the peer's greeting in @in.
 * Anything before the greeting prefix is discarded (stale bytes in a
 * virtio-serial port, banners).  On success the line is consumed and its
 * software-version copied into @ver.
 * Return: 1 found, 0 need more bytes, -EPROTO for an over-long line.
 */
int wire_scan_greeting(struct buf *in, char *ver, size_t verlen);

/*
 * wire_next_packet() - take the next complete packet from @in.
 * Return: 1 and @pkt set (payload view, valid until @in changes), 0 when
 * incomplete, -EMSGSIZE for a length over WIRE_MAX_PACKET, -EPROTO for a
 * zero length.  *@len_out gets the bad length for error messages.
 */
int wire_next_packet(struct buf *in, struct sv *pkt, uint32_t *len_out);

/* Append our greeting line. */
void wire_put_greeting(struct buf *out, const char *software);

#endif
