/* SPDX-License-Identifier: MIT */
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

#define PREFIX_LEN (sizeof(WIRE_GREETING_PREFIX) - 1)

size_t wire_find_greeting(const uint8_t *p, size_t n)
{
	static const char prefix[] = WIRE_GREETING_PREFIX;
	if (n < PREFIX_LEN)
		return n;
	const size_t last = n - PREFIX_LEN; /* the last place a whole prefix fits */
	for (size_t i = 0; i <= last; i++) {
		const uint8_t *s = memchr(p + i, 'S', last - i + 1);
		if (!s)
			break;
		i = (size_t)(s - p);
		if (memcmp(s, prefix, PREFIX_LEN) == 0)
			return i;
	}
	return n;
}

/* Drop @n bytes from the front of @in, counting them in *@skipped. */
static void wire_drop(struct buf *in, size_t n, size_t *skipped)
{
	buf_consume(in, n);
	if (skipped)
		*skipped += n;
}

int wire_scan_greeting_skip(struct buf *in, char *ver, size_t verlen, size_t *skipped)
{
	for (;;) {
		const uint8_t *d = buf_data(in);
		size_t n = buf_used(in);
		/* Look for the prefix at any position; it may be mid-garbage. */
		size_t i = wire_find_greeting(d, n);
		if (i == n) {
			/* Keep only a tail that could still start the prefix. */
			size_t keep = n < PREFIX_LEN - 1 ? n : PREFIX_LEN - 1;
			wire_drop(in, n - keep, skipped);
			return 0;
		}
		wire_drop(in, i, skipped);
		d = buf_data(in);
		n = buf_used(in);
		const uint8_t *v = d + PREFIX_LEN;
		size_t rest = n - PREFIX_LEN;
		const uint8_t *nl = memchr(v, '\n', rest);
		size_t vspan = nl ? (size_t)(nl - v) : rest;
		/* A second greeting before this line ends: the first host died
		 * mid-greeting and the next one's line is the one to read. */
		size_t next = wire_find_greeting(v, vspan);
		if (next < vspan) {
			wire_drop(in, PREFIX_LEN + next, skipped);
			continue;
		}
		if (!nl)
			return rest > WIRE_MAX_VERSION + 1 ? -EPROTO : 0;
		size_t vlen = vspan;
		if (vlen && v[vlen - 1] == '\r')
			vlen--;
		if (vlen > WIRE_MAX_VERSION)
			return -EPROTO;
		if (verlen) {
			size_t c = vlen < verlen - 1 ? vlen : verlen - 1;
			for (size_t k = 0; k < c; k++) {
				uint8_t ch = v[k];
				ver[k] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
			}
			ver[c] = 0;
		}
		buf_consume(in, PREFIX_LEN + vspan + 1);
		return 1;
	}
}

int wire_scan_greeting(struct buf *in, char *ver, size_t verlen)
{
	return wire_scan_greeting_skip(in, ver, verlen, NULL);
}

static bool wire_token_char(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       ch == '.' || ch == '_' || ch == '-';
}

bool wire_greeting_token(const char *ver, const char *key, char *val, size_t vallen)
{
	size_t klen = strlen(key);
	/* Comments follow the software-version, each after a space. */
	for (const char *sp = strchr(ver, ' '); sp; sp = strchr(sp + 1, ' ')) {
		const char *t = sp + 1;
		if (strncmp(t, key, klen) != 0 || t[klen] != '=')
			continue;
		t += klen + 1;
		size_t n = 0;
		for (; t[n] && t[n] != ' '; n++)
			if (!wire_token_char(t[n]) || n == WIRE_TOKEN_MAX)
				return false;
		if (!n || n >= vallen)
			return false;
		memcpy(val, t, n);
		val[n] = 0;
		return true;
	}
	return false;
}

bool wire_disconnect_ahead(const uint8_t *p, size_t n, size_t *end)
{
	size_t at = 0;
	while (n - at >= 5) {
		uint32_t len = get_be32(p + at); /* uint32 packet length */
		if (!len || len > WIRE_MAX_PACKET || n - at - 4 < len)
			return false;
		if (p[at + 4] == MSG_DISCONNECT) { /* byte message number */
			*end = at + 4 + (size_t)len;
			return true;
		}
		at += 4 + (size_t)len;
	}
	return false;
}

bool wire_packets_whole(const uint8_t *p, size_t n)
{
	size_t at = 0;
	while (at < n) {
		if (n - at < 4)
			return false;
		uint32_t len = get_be32(p + at); /* uint32 packet length */
		if (!len || len > WIRE_MAX_PACKET || n - at - 4 < len)
			return false;
		at += 4 + (size_t)len;
	}
	return true;
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

void wire_put_greeting_ex(struct buf *out, const char *software, const char *comment)
{
	buf_put(out, WIRE_GREETING_PREFIX, PREFIX_LEN);
	buf_put(out, software, strlen(software));
	if (comment && *comment) {
		buf_put(out, " ", 1);
		buf_put(out, comment, strlen(comment));
	}
	buf_put(out, "\r\n", 2);
}

void wire_put_greeting(struct buf *out, const char *software)
{
	wire_put_greeting_ex(out, software, NULL);
}
