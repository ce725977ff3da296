/* SPDX-License-Identifier: MIT */
/*
 * Bare ssh-connection framing: one greeting line each way, then packets of
 * uint32 length + payload (first payload byte is the message number).
 */
#ifndef WICKET_WIRE_H
#define WICKET_WIRE_H

#include <stdbool.h>

#include "buf.h"

#define WIRE_GREETING_PREFIX "SSHCONNECTION@putty.projects.tartarus.org-2.0-"
/* Largest packet we accept (length field value). */
#define WIRE_MAX_PACKET (256u * 1024u)
/* The software-version part of a greeting line is bounded like RFC 4253's. */
#define WIRE_MAX_VERSION 200

/*
 * Greeting comments (wicket extension, PROTOCOL.md): a host tags its
 * greeting with "nonce@wicket=N"; an agent on a port that outlives hosts
 * answers with "reply@wicket=N" ("-" for an untagged host), so a host can
 * tell its own answer from one meant for a host that has gone.
 */
#define WIRE_NONCE_KEY "nonce@wicket"
#define WIRE_REPLY_KEY "reply@wicket"
/* Longest token value: [0-9A-Za-z._-] only. */
#define WIRE_TOKEN_MAX 32

/*
 * wire_scan_greeting() - find the peer's greeting in @in.
 * Anything before the greeting prefix is discarded (stale bytes in a
 * virtio-serial port, banners); so is a greeting cut off by another one
 * starting before its line ends (a host that died mid-greeting).  On
 * success the line is consumed and its software-version copied into @ver.
 * Return: 1 found, 0 need more bytes, -EPROTO for an over-long line.
 */
int wire_scan_greeting(struct buf *in, char *ver, size_t verlen);
/* The same; the bytes discarded before the line are added to *@skipped. */
int wire_scan_greeting_skip(struct buf *in, char *ver, size_t verlen, size_t *skipped);

/* Offset of the first whole greeting prefix in @p[0..@n), or @n when none. */
size_t wire_find_greeting(const uint8_t *p, size_t n);

/*
 * wire_greeting_token() - the value of comment "@key=VALUE" in a greeting's
 * software-version @ver (comments are separated by spaces).  At most
 * WIRE_TOKEN_MAX characters of [0-9A-Za-z._-]; @val needs room for them
 * and a NUL.  Return: true when present and well formed.
 */
bool wire_greeting_token(const char *ver, const char *key, char *val, size_t vallen);

/*
 * wire_disconnect_ahead() - do the complete packets at the start of
 * @p[0..@n) include a DISCONNECT?  The walk stops at an incomplete packet
 * or a bad length.  Return: true, with *@end just past the DISCONNECT.
 */
bool wire_disconnect_ahead(const uint8_t *p, size_t n, size_t *end);

/*
 * wire_packets_whole() - is @p[0..@n) nothing but complete packets of valid
 * lengths (none at all counts)?  What a host has sent right after its
 * greeting while it waits for ours looks like that.
 */
bool wire_packets_whole(const uint8_t *p, size_t n);

/*
 * wire_next_packet() - take the next complete packet from @in.
 * Return: 1 and @pkt set (payload view, valid until @in changes), 0 when
 * incomplete, -EMSGSIZE for a length over WIRE_MAX_PACKET, -EPROTO for a
 * zero length.  *@len_out gets the bad length for error messages.
 */
int wire_next_packet(struct buf *in, struct sv *pkt, uint32_t *len_out);

/* Append our greeting line. */
void wire_put_greeting(struct buf *out, const char *software);
/* The same with a comment after the software-version (NULL: none). */
void wire_put_greeting_ex(struct buf *out, const char *software, const char *comment);

#endif
