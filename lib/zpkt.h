/* SPDX-License-Identifier: MIT */
/*
 * zlib@wicket: compression of a bare ssh-connection stream, packet by
 * packet (PROTOCOL.md).  One zlib stream per direction for the whole
 * connection; each packet's payload is deflated and sync-flushed, and the
 * flush's fixed tail (00 00 ff ff) is left out of the packet and put back
 * before inflating.  A compressed packet is framed like any other: uint32
 * length of the compressed bytes, then them.
 *
 * Inflating is hostile input: a packet that inflates past @max (the packet
 * limit) is refused, and memory per stream is zlib's fixed windows
 * (deflate about 256 KiB, inflate about 40 KiB).
 */
#ifndef WICKET_ZPKT_H
#define WICKET_ZPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct zpkt;

/* True when this build can compress (zlib). */
bool zpkt_available(void);
/* One direction: @deflating for what we send.  NULL without zlib or memory. */
struct zpkt *zpkt_new(bool deflating);
void zpkt_free(struct zpkt *z);
/* Append the packet for payload @p/@n (length + compressed bytes) to @out; 0 or -1. */
int zpkt_deflate(struct zpkt *z, const uint8_t *p, size_t n, struct buf *out);
/*
 * Inflate one packet's compressed bytes into @out (emptied first): 0, or
 * -EMSGSIZE when it would exceed @max bytes, -EPROTO for bad data.
 */
int zpkt_inflate(struct zpkt *z, const uint8_t *p, size_t n, struct buf *out, size_t max);
/* Bytes in and out so far, for ratios in logs and status. */
void zpkt_counts(const struct zpkt *z, uint64_t *in, uint64_t *out);

#endif
