/* SPDX-License-Identifier: MIT */
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int wire_scan_greeting(struct buf *in, char *ver, size_t verlen)
{
	static const char prefix[] = WIRE_GREETING_PREFIX;
	const size_t plen = sizeof(prefix) - 1;
	const uint8_t *d = buf_data(in);
	size_t n = buf_used(in);
	size_t i = 0;

	/* Look for the prefix at any position; it may be mid-garbage. */
	for (; i + plen <= n; i++) {
		if (d[i] == 'S' && memcmp(d + i, prefix, plen) == 0)
			break;
	}
	if (i + plen > n) {
		/* Keep only a tail that could still start the prefix. */
		size_t keep = n < plen - 1 ? n : plen - 1;
		buf_consume(in, n - keep);
		return 0;
	}
	buf_consume(in, i);
	d = buf_data(in);
	n = buf_used(in);
	const uint8_t *nl = memchr(d + plen, '\n', n - plen);
	if (!nl) {
		if (n - plen > WIRE_MAX_VERSION + 1)
			return -EPROTO;
		return 0;
	}
	size_t vlen = (size_t)(nl - (d + plen));
	if (vlen && d[plen + vlen - 1] == '\r')
		vlen--;
	if (vlen > WIRE_MAX_VERSION)
		return -EPROTO;
	if (verlen) {
		size_t c = vlen < verlen - 1 ? vlen : verlen - 1;
		for (size_t k = 0; k < c; k++) {
			uint8_t ch = d[plen + k];
			ver[k] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
		}
		ver[c] = 0;
	}
	buf_consume(in, (size_t)(nl - d) + 1);
	return 1;
}

int wire_next_packet(struct buf *in, struct sv *pkt, uint32_t *len_out)
{
	size_t n = buf_used(in);
	if (n < 4)
		return 0;
	uint32_t len = get_be32(buf_data(in));
	if (len_out)
		*len_out = len;
	if (len == 0)
		return -EPROTO;
	if (len > WIRE_MAX_PACKET)
		return -EMSGSIZE;
	if (n - 4 < len)
		return 0;
	pkt->p = buf_data(in) + 4;
	pkt->n = len;
	buf_consume(in, 4 + (size_t)len);
	return 1;
}

void wire_put_greeting(struct buf *out, const char *software)
{
	buf_put(out, WIRE_GREETING_PREFIX, sizeof(WIRE_GREETING_PREFIX) - 1);
	buf_put(out, software, strlen(software));
	buf_put(out, "\r\n", 2);
}
