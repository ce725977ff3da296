/* SPDX-License-Identifier: MIT */
/* Encoded terminal modes of pty-req (RFC 4254 section 8), both directions. */
#ifndef WICKET_TTYMODES_H
#define WICKET_TTYMODES_H

#include <termios.h>

#include "buf.h"

/* Encode @t as the pty-req "encoded terminal modes" string contents. */
void ttymodes_encode(const struct termios *t, struct buf *out);
/*
 * Apply encoded modes to @t.  Unknown opcodes 1..159 are skipped (their
 * argument is known to be a uint32); 160+ ends parsing as the RFC says.
 * Return: 0, or -EINVAL for a malformed string.
 */
int ttymodes_apply(struct sv modes, struct termios *t);

#endif
