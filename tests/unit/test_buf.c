/* SPDX-License-Identifier: MIT */
/* lib/buf: read cursor with sticky error, capped writer/queue, string views. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"

/* After an error every getter must give 0/empty and the cursor never ends. */
static void check_dead(struct rd *r, const char *what)
{
	is_int(rd_u8(r), 0, "%s: rd_u8 after error is 0", what);
	ok(!rd_bool(r), "%s: rd_bool after error is false", what);
	is_int(rd_u32(r), 0, "%s: rd_u32 after error is 0", what);
	struct sv s = rd_str(r);
	ok(s.p == NULL && s.n == 0, "%s: rd_str after error is empty", what);
	s = rd_bytes(r, 0);
	ok(s.p == NULL && s.n == 0, "%s: rd_bytes(0) after error is empty", what);
	s = rd_rest(r);
	ok(s.p == NULL && s.n == 0, "%s: rd_rest after error is empty", what);
	is_int(rd_left(r), 0, "%s: rd_left after error is 0", what);
	ok(!rd_end(r), "%s: rd_end false after error", what);
	ok(r->err, "%s: err stays set", what);
}

static void test_rd_empty(void)
{
	struct rd r;
	rd_init(&r, "", 0);
	ok(rd_end(&r), "empty input: rd_end true before reading");
	is_int(rd_left(&r), 0, "empty input: rd_left 0");
	struct sv s = rd_rest(&r);
	is_int(s.n, 0, "empty input: rd_rest is empty");
	ok(!r.err, "empty input: rd_rest of nothing is not an error");
	s = rd_bytes(&r, 0);
	ok(!r.err && s.n == 0, "empty input: rd_bytes(0) fine");
	is_int(rd_u8(&r), 0, "empty input: rd_u8 gives 0");
	ok(r.err, "empty input: rd_u8 sets err");
	check_dead(&r, "empty/u8");

	rd_init(&r, NULL, 0);
	ok(!rd_bool(&r) && r.err, "empty input: rd_bool sets err");
	rd_init(&r, NULL, 0);
	s = rd_str(&r);
	ok(s.n == 0 && s.p == NULL && r.err, "empty input: rd_str sets err");
	rd_init(&r, NULL, 0);
	s = rd_bytes(&r, 1);
	ok(s.p == NULL && r.err, "empty input: rd_bytes(1) sets err");
}

static void test_rd_u32_short(void)
{
	static const uint8_t src[4] = { 0x12, 0x34, 0x56, 0x78 };
	for (size_t n = 1; n <= 3; n++) {
		struct rd r;
		rd_init(&r, src, n);
		is_int(rd_u32(&r), 0, "rd_u32 on %zu bytes gives 0", n);
		ok(r.err, "rd_u32 on %zu bytes sets err", n);
		is_int(r.off, 0, "rd_u32 on %zu bytes consumes nothing", n);
		check_dead(&r, "short u32");
	}
	struct rd r;
	rd_init(&r, src, 4);
	is_int(rd_u32(&r), 0x12345678, "rd_u32 on exactly 4 bytes is big-endian");
	ok(rd_end(&r), "rd_u32 on exactly 4 bytes reaches the end");
	is_int(rd_u8(&r), 0, "rd_u8 past the end gives 0");
	ok(r.err && !rd_end(&r), "reading past the end sets err and rd_end turns false");

	static const uint8_t ff[4] = { 0xff, 0xff, 0xff, 0xff };
	rd_init(&r, ff, 4);
	ok(rd_u32(&r) == UINT32_MAX && !r.err, "rd_u32 reads 0xffffffff");
}

static void test_rd_u8_bool(void)
{
	static const uint8_t src[] = { 0x00, 0x01, 0x7f, 0xff };
	struct rd r;
	rd_init(&r, src, sizeof(src));
	ok(!rd_bool(&r), "rd_bool 0 is false");
	ok(rd_bool(&r), "rd_bool 1 is true");
	ok(rd_bool(&r), "rd_bool 0x7f is true");
	is_int(rd_u8(&r), 0xff, "rd_u8 0xff");
	ok(rd_end(&r), "all 4 bytes consumed");
}

static void test_rd_str(void)
{
	struct rd r;
	static const uint8_t ok5[] = { 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 'X' };
	rd_init(&r, ok5, sizeof(ok5));
	struct sv s = rd_str(&r);
	is_mem(s.p, s.n, "hello", 5, "rd_str reads a 5-byte string");
	ok(s.p == ok5 + 4, "rd_str view points into the input");
	ok(!rd_end(&r), "one byte left: rd_end false");
	is_int(rd_left(&r), 1, "one byte left");
	is_int(rd_u8(&r), 'X', "trailing byte");
	ok(rd_end(&r), "now at the end");

	/* Length exactly the remaining bytes. */
	rd_init(&r, ok5, 9);
	s = rd_str(&r);
	ok(s.n == 5 && rd_end(&r), "rd_str with length == remaining ends cleanly");

	/* Length one more than remaining. */
	static const uint8_t long6[] = { 0, 0, 0, 6, 'h', 'e', 'l', 'l', 'o' };
	rd_init(&r, long6, sizeof(long6));
	s = rd_str(&r);
	ok(s.p == NULL && s.n == 0, "rd_str with length > remaining is empty");
	ok(r.err, "rd_str with length > remaining sets err");
	check_dead(&r, "str too long");

	/* Length 0xFFFFFFFF must not wrap around anything. */
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'a', 'b' };
	rd_init(&r, huge, sizeof(huge));
	s = rd_str(&r);
	ok(s.p == NULL && s.n == 0 && r.err, "rd_str with length 0xFFFFFFFF fails");
	check_dead(&r, "str 0xffffffff");

	/* Zero-length string. */
	static const uint8_t zero[] = { 0, 0, 0, 0 };
	rd_init(&r, zero, sizeof(zero));
	s = rd_str(&r);
	ok(s.n == 0 && !r.err && rd_end(&r), "rd_str of length 0 is fine and ends");

	/* Length field itself truncated. */
	rd_init(&r, zero, 3);
	s = rd_str(&r);
	ok(s.n == 0 && r.err, "rd_str with 3-byte length field fails");
}

static void test_rd_bytes_rest(void)
{
	static const uint8_t src[] = "abcdef";
	struct rd r;
	rd_init(&r, src, 6);
	struct sv s = rd_bytes(&r, 2);
	is_mem(s.p, s.n, "ab", 2, "rd_bytes(2)");
	s = rd_bytes(&r, 4);
	is_mem(s.p, s.n, "cdef", 4, "rd_bytes(exactly remaining)");
	ok(rd_end(&r), "rd_bytes consumed everything");
	s = rd_bytes(&r, 1);
	ok(s.p == NULL && r.err, "rd_bytes past the end fails");

	rd_init(&r, src, 6);
	s = rd_bytes(&r, SIZE_MAX);
	ok(s.p == NULL && r.err, "rd_bytes(SIZE_MAX) fails");

	rd_init(&r, src, 6);
	rd_u8(&r);
	s = rd_rest(&r);
	is_mem(s.p, s.n, "bcdef", 5, "rd_rest gives what is left");
	ok(rd_end(&r), "rd_rest consumes everything");
	s = rd_rest(&r);
	ok(s.n == 0 && !r.err, "rd_rest at end is empty, no error");

	/* rd_end requires full consumption. */
	rd_init(&r, src, 6);
	ok(!rd_end(&r), "unread input: rd_end false");
	rd_bytes(&r, 5);
	ok(!rd_end(&r), "one byte unread: rd_end false");
	rd_u8(&r);
	ok(rd_end(&r), "all read: rd_end true");
}

static void test_rd_sticky_midway(void)
{
	/* A failing read in the middle poisons later reads even if bytes remain. */
	static const uint8_t src[] = { 0, 0, 0, 9, 'a', 'b', 1, 2, 3, 4 };
	struct rd r;
	rd_init(&r, src, sizeof(src));
	struct sv s = rd_str(&r);
	ok(s.p == NULL && r.err, "string length 9 over 6 remaining fails");
	check_dead(&r, "midway");
	/* rd_init resets the error. */
	rd_init(&r, src + 4, 2);
	ok(!r.err && rd_u8(&r) == 'a', "rd_init clears the error");
}

static void test_sv(void)
{
	struct sv a = sv_from_cstr("abc");
	ok(a.n == 3 && memcmp(a.p, "abc", 3) == 0, "sv_from_cstr");
	ok(sv_eq(a, "abc"), "sv_eq equal");
	ok(!sv_eq(a, "ab"), "sv_eq shorter");
	ok(!sv_eq(a, "abcd"), "sv_eq longer");
	ok(!sv_eq(a, "abd"), "sv_eq different");
	ok(sv_eq(SV_NULL, ""), "sv_eq empty view vs \"\"");

	ok(!sv_has_nul(a), "sv_has_nul false for abc");
	struct sv withnul = { (const uint8_t *)"a\0b", 3 };
	ok(sv_has_nul(withnul), "sv_has_nul true for a\\0b");
	ok(!sv_has_nul(SV_NULL), "sv_has_nul false for empty");

	char *d = sv_strdup(a);
	is_str(d, "abc", "sv_strdup copies and terminates");
	free(d);
	d = sv_strdup(withnul);
	ok(d == NULL, "sv_strdup refuses an embedded NUL");
	free(d);
	struct sv trailing = { (const uint8_t *)"ab\0", 3 };
	d = sv_strdup(trailing);
	ok(d == NULL, "sv_strdup refuses a trailing NUL");
	free(d);
	d = sv_strdup(SV_NULL);
	is_str(d, "", "sv_strdup of empty view is \"\"");
	free(d);
	/* A view that is not terminated must not be over-read. */
	static const uint8_t noterm[4] = { 'w', 'x', 'y', 'z' };
	struct sv part = { noterm, 2 };
	d = sv_strdup(part);
	is_str(d, "wx", "sv_strdup copies exactly n bytes");
	free(d);
}

static void test_sv_printable(void)
{
	char out[16];
	struct sv s = { (const uint8_t *)"a\x01\x7f\xff~ \n", 7 };
	memset(out, 'Z', sizeof(out));
	sv_printable(s, out, sizeof(out));
	is_str(out, "a???~ ?", "sv_printable maps controls, DEL and high bytes to ?");

	memset(out, 'Z', sizeof(out));
	sv_printable(sv_from_cstr("abcdefgh"), out, 4);
	is_str(out, "abc", "sv_printable truncates to outlen-1 and terminates");
	is_int(out[4], 'Z', "sv_printable writes nothing past outlen");

	memset(out, 'Z', sizeof(out));
	sv_printable(sv_from_cstr("abc"), out, 1);
	is_int(out[0], 0, "sv_printable with outlen 1 writes only the NUL");
	is_int(out[1], 'Z', "sv_printable with outlen 1 stays in bounds");

	memset(out, 'Z', sizeof(out));
	sv_printable(sv_from_cstr("abc"), out, 0);
	is_int(out[0], 'Z', "sv_printable with outlen 0 writes nothing");

	struct sv nul = { (const uint8_t *)"a\0b", 3 };
	sv_printable(nul, out, sizeof(out));
	is_mem(out, 4, "a?b", 4, "sv_printable maps NUL to ?");
}

static void test_writer_basic(void)
{
	struct buf b;
	buf_init(&b, 1024);
	ok(buf_used(&b) == 0 && !b.err, "fresh buf is empty");
	buf_u8(&b, 0xab);
	buf_bool(&b, true);
	buf_bool(&b, false);
	buf_u32(&b, 0x01020304);
	buf_cstr(&b, "hi");
	buf_str(&b, "", 0);
	buf_sv(&b, sv_from_cstr("xyz"));
	buf_put(&b, "!!", 2);
	static const uint8_t want[] = { 0xab, 1, 0, 1, 2, 3, 4, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0,
					0,    0, 0, 3, 'x', 'y', 'z', '!', '!' };
	is_mem(buf_data(&b), buf_used(&b), want, sizeof(want), "marshalled bytes");
	ok(!b.err, "no error within max");

	/* Round trip through the reader. */
	struct rd r;
	rd_init(&r, buf_data(&b), buf_used(&b));
	ok(rd_u8(&r) == 0xab && rd_bool(&r) && !rd_bool(&r) && rd_u32(&r) == 0x01020304,
	   "reader decodes the writer's scalars");
	ok(sv_eq(rd_str(&r), "hi") && sv_eq(rd_str(&r), "") && sv_eq(rd_str(&r), "xyz"),
	   "reader decodes the writer's strings");
	ok(sv_eq(rd_rest(&r), "!!") && rd_end(&r), "reader reaches the end");

	buf_reset(&b);
	ok(buf_used(&b) == 0 && !b.err, "buf_reset empties");
	buf_free(&b);
	ok(b.p == NULL && b.max == 1024 && buf_used(&b) == 0, "buf_free keeps max, drops data");
}

static void test_writer_cap(void)
{
	struct buf b;
	buf_init(&b, 16);
	buf_put(&b, "0123456789abcdef", 16);
	ok(!b.err && buf_used(&b) == 16, "filling exactly to max is fine");
	buf_u8(&b, 'x');
	ok(b.err, "growing past max sets err");
	is_int(buf_used(&b), 16, "failed write adds nothing");
	buf_consume(&b, 16);
	ok(buf_reserve(&b, 1) == NULL, "err is sticky: reserve fails even with room");
	buf_u8(&b, 'y');
	ok(b.err && buf_used(&b) == 0, "err is sticky: writes are dropped");
	buf_reset(&b);
	ok(!b.err, "buf_reset clears err");
	buf_u8(&b, 'z');
	ok(!b.err && buf_used(&b) == 1 && buf_data(&b)[0] == 'z', "usable again after reset");
	buf_free(&b);

	/* One big write over max fails as a whole. */
	buf_init(&b, 8);
	buf_put(&b, "abc", 3);
	buf_put(&b, "123456", 6);
	ok(b.err, "3 + 6 bytes over max 8 fails");
	is_mem(buf_data(&b), buf_used(&b), "abc", 3, "earlier data intact after failed write");
	buf_free(&b);

	/* buf_u32 half-fitting must not write a partial value. */
	buf_init(&b, 6);
	buf_put(&b, "abc", 3);
	buf_u32(&b, 0xdeadbeef);
	ok(b.err && buf_used(&b) == 3, "buf_u32 that does not fit writes nothing");
	buf_free(&b);

	/* buf_str: the length prefix counts against max too. */
	buf_init(&b, 7);
	buf_str(&b, "abc", 3);
	ok(!b.err && buf_used(&b) == 7, "4+3 bytes fit max 7");
	buf_free(&b);
	buf_init(&b, 6);
	buf_str(&b, "abc", 3);
	ok(b.err, "4+3 bytes do not fit max 6");
	buf_free(&b);

	/* Huge request does not overflow the size arithmetic. */
	buf_init(&b, 1024);
	buf_u8(&b, 1);
	ok(buf_reserve(&b, SIZE_MAX) == NULL && b.err, "reserve(SIZE_MAX) fails cleanly");
	buf_free(&b);
	buf_init(&b, SIZE_MAX);
	buf_u8(&b, 1);
	ok(buf_reserve(&b, SIZE_MAX) == NULL && b.err,
	   "reserve(SIZE_MAX) with used 1 and max SIZE_MAX fails cleanly");
	buf_free(&b);
}

static void test_writer_reserve_commit_consume(void)
{
	struct buf b;
	buf_init(&b, 4096);
	uint8_t *w = buf_reserve(&b, 10);
	ok(w != NULL, "reserve 10");
	ok(b.cap >= 10, "capacity at least 10");
	is_int(buf_used(&b), 0, "reserve does not change used");
	memcpy(w, "0123456789", 10);
	buf_commit(&b, 4);
	is_mem(buf_data(&b), buf_used(&b), "0123", 4, "commit 4 of the reserved 10");
	w = buf_reserve(&b, 3);
	ok(w == buf_data(&b) + 4, "next reserve continues after committed data");
	memcpy(w, "abc", 3);
	buf_commit(&b, 3);
	is_mem(buf_data(&b), buf_used(&b), "0123abc", 7, "second commit appended");
	buf_consume(&b, 2);
	is_mem(buf_data(&b), buf_used(&b), "23abc", 5, "consume 2 from the front");
	buf_consume(&b, 5);
	ok(buf_used(&b) == 0 && b.off == 0 && b.len == 0, "consuming everything rewinds");
	buf_put(&b, "xy", 2);
	buf_consume(&b, 100);
	ok(buf_used(&b) == 0 && b.off == 0 && b.len == 0, "over-consume just empties");
	buf_free(&b);
}

static void test_writer_growth_slide(void)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	uint8_t pattern[5000];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);

	/* Growth from nothing through several doublings keeps the data. */
	for (size_t i = 0; i < sizeof(pattern); i += 100)
		buf_put(&b, pattern + i, 100);
	ok(!b.err, "5000 bytes in 100-byte steps");
	is_mem(buf_data(&b), buf_used(&b), pattern, sizeof(pattern), "data preserved across growth");
	size_t cap = b.cap;
	ok(cap >= 5000 && cap <= b.max, "capacity %zu within [5000, max]", cap);

	/* Consume most, then append: data slides to the front, no growth. */
	buf_consume(&b, 4000);
	size_t room = cap - b.len;
	/* Need more than the tail room but less than the freed front. */
	size_t add = room + 10;
	ok(add < 4000, "test set-up: append needs sliding (%zu)", add);
	uint8_t *more = malloc(add);
	for (size_t i = 0; i < add; i++)
		more[i] = (uint8_t)(0xa5 ^ i);
	const uint8_t *oldp = b.p;
	buf_put(&b, more, add);
	ok(!b.err, "append after consume");
	ok(b.p == oldp && b.cap == cap, "append reused the same storage (slide, no growth)");
	is_int(b.off, 0, "slide moved data to offset 0");
	is_int(buf_used(&b), 1000 + add, "used = 1000 remaining + appended");
	ok(memcmp(buf_data(&b), pattern + 4000, 1000) == 0, "old tail preserved across slide");
	ok(memcmp(buf_data(&b) + 1000, more, add) == 0, "appended bytes after old tail");
	free(more);

	/* Growth with data at a non-zero offset keeps exactly the unconsumed bytes. */
	buf_reset(&b);
	buf_put(&b, pattern, 300);
	buf_consume(&b, 100);
	size_t big = b.cap * 3;
	uint8_t *blob = malloc(big);
	memset(blob, 0x5a, big);
	buf_put(&b, blob, big);
	ok(!b.err && b.off == 0, "growth compacts to offset 0");
	ok(buf_used(&b) == 200 + big && memcmp(buf_data(&b), pattern + 100, 200) == 0 &&
		   memcmp(buf_data(&b) + 200, blob, big) == 0,
	   "growth with offset keeps unconsumed bytes then new ones");
	free(blob);
	buf_free(&b);

	/* Growth is capped at max: capacity never exceeds it. */
	buf_init(&b, 1000);
	buf_put(&b, pattern, 999);
	ok(!b.err && b.cap <= 1000, "capacity clamped to max (cap %zu)", b.cap);
	buf_u8(&b, 1);
	ok(!b.err && buf_used(&b) == 1000, "last byte up to max fits");
	buf_u8(&b, 2);
	ok(b.err, "one past max fails");
	buf_free(&b);
}

/* buf_reserve_read: reads go into the tail; the unread rest moves only when needed. */
static void test_reserve_read(void)
{
	struct buf b;
	size_t room;
	uint8_t pattern[4096];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);

	buf_init(&b, 4096);
	uint8_t *w = buf_reserve_read(&b, 100, 1000, &room);
	ok(w && room == 1000 && b.cap >= 1000, "empty: grows to room for want (room %zu)", room);
	memcpy(w, pattern, room);
	buf_commit(&b, room);
	buf_consume(&b, 900);
	uint8_t *p0 = b.p;
	size_t cap0 = b.cap;
	size_t tail = b.cap - b.len;
	w = buf_reserve_read(&b, 8, 1000, &room);
	if (tail >= 8) {
		ok(w == p0 + 1000 && b.off == 900, "tail >= min: read goes to the tail, nothing moves");
		is_int(room, tail < 1000 ? tail : 1000, "room is the tail, at most want");
	} else {
		ok(w != NULL, "tail < min: room made");
	}
	ok(memcmp(buf_data(&b), pattern + 900, 100) == 0, "unread bytes intact");

	/* Fill up to the tail, then ask for more than is left: grows (below max). */
	buf_commit(&b, room);
	w = buf_reserve_read(&b, 600, 1000, &room);
	ok(w && room >= 600, "tail < min below max: made room (%zu)", room);
	ok(b.cap > cap0 || b.off == 0, "by growing or sliding");
	ok(memcmp(buf_data(&b), pattern + 900, 100) == 0, "unread bytes moved intact");
	buf_free(&b);

	/* At max: slide (overlapping move) instead of reallocating. */
	buf_init(&b, 2048);
	w = buf_reserve_read(&b, 64, 2048, &room);
	ok(w && room == 2048 && b.cap == 2048, "grows straight to max");
	memcpy(w, pattern, 2048);
	buf_commit(&b, 2048);
	buf_consume(&b, 1024 + 512);
	p0 = b.p;
	w = buf_reserve_read(&b, 64, 2048, &room);
	ok(w && b.p == p0 && b.off == 0 && b.len == 512, "at max: slid to the front, same block");
	is_int(room, 2048 - 512, "room is all that is free");
	ok(memcmp(buf_data(&b), pattern + 1536, 512) == 0, "slid bytes intact");
	/* Overlapping slide: more unread than consumed. */
	buf_commit(&b, 1024);
	memcpy(b.p + 512, pattern, 1024);
	buf_consume(&b, 700);
	w = buf_reserve_read(&b, 1000, 2048, &room);
	ok(w && b.off == 0 && b.len == 836 && room == 2048 - 836, "overlapping slide");
	ok(memcmp(buf_data(&b), pattern + 188, 836) == 0, "overlapping slide keeps the bytes");
	/* min that cannot fit under max: sticky error. */
	buf_commit(&b, 1000);
	w = buf_reserve_read(&b, 1024, 2048, &room);
	ok(!w && b.err && room == 0, "min beyond max - used fails");
	w = buf_reserve_read(&b, 1, 1, &room);
	ok(!w, "error is sticky");
	buf_free(&b);

	/* Fully consumed: starts over at the front without moving anything. */
	buf_init(&b, 4096);
	w = buf_reserve_read(&b, 1, 512, &room);
	buf_commit(&b, 512);
	buf_consume(&b, 512);
	w = buf_reserve_read(&b, 512, 512, &room);
	ok(w == b.p && room == 512, "empty buffer reused from the front");
	buf_free(&b);
}

int main(void)
{
	test_rd_empty();
	test_rd_u32_short();
	test_rd_u8_bool();
	test_rd_str();
	test_rd_bytes_rest();
	test_rd_sticky_midway();
	test_sv();
	test_sv_printable();
	test_writer_basic();
	test_writer_cap();
	test_writer_reserve_commit_consume();
	test_writer_growth_slide();
	test_reserve_read();
	return done_testing();
}
