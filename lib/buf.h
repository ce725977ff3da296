/* SPDX-License-Identifier: MIT */
/*
 * Marshalling: a read cursor with a sticky error flag over non-owning views,
 * and a growable byte queue with a hard size cap used both as a packet writer
 * and as an I/O queue (data lives in p[off..len)).
 */
#ifndef WICKET_BUF_H
#define WICKET_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A non-owning byte string view; never NUL-terminated by contract. */
struct sv {
	const uint8_t *p;
	size_t n;
};

#define SV_NULL ((struct sv){ NULL, 0 })

struct sv sv_from_cstr(const char *s);
bool sv_eq(struct sv a, const char *s);
bool sv_has_nul(struct sv a);
/* Copy for display: non-printable bytes become '?', always NUL-terminated. */
void sv_printable(struct sv a, char *out, size_t outlen);
/* Heap copy with a terminating NUL; NULL when the view holds a NUL byte. */
char *sv_strdup(struct sv a);

/* Read cursor: every getter returns 0/empty once err is set. */
struct rd {
	const uint8_t *p;
	size_t n;
	size_t off;
	bool err;
};

void rd_init(struct rd *r, const void *p, size_t n);
uint8_t rd_u8(struct rd *r);
bool rd_bool(struct rd *r);
uint32_t rd_u32(struct rd *r);
/* SSH "string": uint32 length + bytes; the view points into the input. */
struct sv rd_str(struct rd *r);
struct sv rd_bytes(struct rd *r, size_t n);
struct sv rd_rest(struct rd *r);
size_t rd_left(const struct rd *r);
/* True when no error happened and every byte was consumed. */
bool rd_end(const struct rd *r);

/* Growable queue / writer.  Growth past max sets err (sticky). */
struct buf {
	uint8_t *p;
	size_t off; /* first unconsumed byte */
	size_t len; /* end of data */
	size_t cap;
	size_t max;
	bool err;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
/* Never NULL, even before the first allocation (memchr(NULL, c, 0) is UB). */
static inline uint8_t *buf_data(const struct buf *b)
{
	static uint8_t empty[1];
	return b->p ? b->p + b->off : empty;
}
/* Make room for n more bytes at the end; returns the write pointer or NULL. */
uint8_t *buf_reserve(struct buf *b, size_t n);
/*
 * Room for one read of up to @want bytes (stream input): the free tail as
 * it is when it holds at least @min bytes, else made to hold that by
 * growing towards room for @want or, once at max, by sliding the unread
 * bytes to the front.  So a partial packet is moved about once per buffer
 * fill instead of once per read.  *@room gets the usable size (at most
 * @want); NULL and err set when @min cannot fit under max.
 */
uint8_t *buf_reserve_read(struct buf *b, size_t min, size_t want, size_t *room);
void buf_commit(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_u8(struct buf *b, uint8_t v);
void buf_bool(struct buf *b, bool v);
void buf_u32(struct buf *b, uint32_t v);
void buf_str(struct buf *b, const void *p, size_t n);
void buf_cstr(struct buf *b, const char *s);
void buf_sv(struct buf *b, struct sv s);

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
