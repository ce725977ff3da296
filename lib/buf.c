/* SPDX-License-Identifier: MIT */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

struct sv sv_from_cstr(const char *s)
{
	return (struct sv){ (const uint8_t *)s, strlen(s) };
}

bool sv_eq(struct sv a, const char *s)
{
	size_t n = strlen(s);
	return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

bool sv_has_nul(struct sv a)
{
	return a.n && memchr(a.p, 0, a.n) != NULL;
}

void sv_printable(struct sv a, char *out, size_t outlen)
{
	if (!outlen)
		return;
	size_t n = a.n < outlen - 1 ? a.n : outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (a.p[i] >= 0x20 && a.p[i] < 0x7f) ? (char)a.p[i] : '?';
	out[n] = 0;
}

char *sv_strdup(struct sv a)
{
	if (sv_has_nul(a))
		return NULL;
	char *s = malloc(a.n + 1);
	if (!s)
		return NULL;
	if (a.n)
		memcpy(s, a.p, a.n);
	s[a.n] = 0;
	return s;
}

void rd_init(struct rd *r, const void *p, size_t n)
{
	*r = (struct rd){ .p = p, .n = n };
}

static bool rd_need(struct rd *r, size_t n)
{
	if (r->err || r->n - r->off < n) {
		r->err = true;
		return false;
	}
	return true;
}

uint8_t rd_u8(struct rd *r)
{
	if (!rd_need(r, 1))
		return 0;
	return r->p[r->off++];
}

bool rd_bool(struct rd *r)
{
	return rd_u8(r) != 0;
}

uint32_t rd_u32(struct rd *r)
{
	if (!rd_need(r, 4))
		return 0;
	uint32_t v = get_be32(r->p + r->off);
	r->off += 4;
	return v;
}

struct sv rd_bytes(struct rd *r, size_t n)
{
	if (!rd_need(r, n))
		return SV_NULL;
	struct sv s = { r->p + r->off, n };
	r->off += n;
	return s;
}

struct sv rd_str(struct rd *r)
{
	uint32_t n = rd_u32(r);
	return rd_bytes(r, n);
}

struct sv rd_rest(struct rd *r)
{
	if (r->err)
		return SV_NULL;
	return rd_bytes(r, r->n - r->off);
}

size_t rd_left(const struct rd *r)
{
	return r->err ? 0 : r->n - r->off;
}

bool rd_end(const struct rd *r)
{
	return !r->err && r->off == r->n;
}

void buf_init(struct buf *b, size_t max)
{
	*b = (struct buf){ .max = max };
}

void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){ .max = b->max };
}

void buf_reset(struct buf *b)
{
	b->off = b->len = 0;
	b->err = false;
}

/* Move the @used unconsumed bytes to the front of a new @ncap array. */
static bool buf_regrow(struct buf *b, size_t ncap, size_t used)
{
	uint8_t *np = malloc(ncap);
	if (!np) {
		b->err = true;
		return false;
	}
	if (used)
		memcpy(np, b->p + b->off, used);
	free(b->p);
	b->p = np;
	b->cap = ncap;
	b->off = 0;
	b->len = used;
	return true;
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= n)
		return b->p + b->len;
	size_t used = b->len - b->off;
	if (n > b->max || used > b->max - n) {
		b->err = true;
		return NULL;
	}
	/* Slide consumed bytes out when that makes enough room and is cheap. */
	if (b->off && b->cap - used >= n && used <= b->off) {
		memcpy(b->p, b->p + b->off, used);
		b->off = 0;
		b->len = used;
		return b->p + b->len;
	}
	size_t want = used + n;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < want)
		ncap *= 2;
	if (ncap > b->max)
		ncap = b->max;
	return buf_regrow(b, ncap, used) ? b->p + b->len : NULL;
}

uint8_t *buf_reserve_read(struct buf *b, size_t min, size_t want, size_t *room)
{
	*room = 0;
	if (b->err)
		return NULL;
	if (b->off == b->len)
		b->off = b->len = 0;
	if (want < min)
		want = min;
	if (b->cap - b->len < min) {
		size_t used = b->len - b->off;
		if (min > b->max || used > b->max - min) {
			b->err = true;
			return NULL;
		}
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->max && ncap - used < want)
			ncap *= 2;
		if (ncap > b->max)
			ncap = b->max;
		if (ncap > b->cap) {
			if (!buf_regrow(b, ncap, used))
				return NULL;
		} else {
			memmove(b->p, b->p + b->off, used);
			b->off = 0;
			b->len = used;
		}
	}
	size_t tail = b->cap - b->len;
	*room = tail < want ? tail : want;
	return b->p + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	uint8_t *w = buf_reserve(b, n);
	if (!w)
		return;
	if (n)
		memcpy(w, p, n);
	b->len += n;
}

void buf_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

void buf_bool(struct buf *b, bool v)
{
	buf_u8(b, v ? 1 : 0);
}

void buf_u32(struct buf *b, uint32_t v)
{
	uint8_t tmp[4];
	put_be32(tmp, v);
	buf_put(b, tmp, 4);
}

void buf_str(struct buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		b->err = true;
		return;
	}
	buf_u32(b, (uint32_t)n);
	buf_put(b, p, n);
}

void buf_cstr(struct buf *b, const char *s)
{
	buf_str(b, s, strlen(s));
}

void buf_sv(struct buf *b, struct sv s)
{
	buf_str(b, s.p, s.n);
}
