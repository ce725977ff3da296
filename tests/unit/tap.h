/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP (Test Anything Protocol) producer for the unit tests.
 *
 *   ok(cond, "what %d", x);          one test point
 *   is_int(got, want, "what");        integer comparison with diagnostics
 *   is_str(got, want, "what");        C string comparison (NULL-safe)
 *   is_mem(got, gn, want, wn, "what") byte-string comparison
 *   skip(n, "why");                   n skipped test points
 *   todo_begin("why") / todo_end()    points in between carry "# TODO"
 *   diag("fmt", ...)                  a "# " comment line
 *   return done_testing();            prints the trailing plan, exit status
 *
 * Each test program is one translation unit, so the state lives in static
 * variables here.  Everything is static inline so an unused helper costs
 * nothing and triggers no warning.
 */
#ifndef WICKET_TAP_H
#define WICKET_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run_count;
static int tap_fail_count;
static int tap_planned = -1;
static const char *tap_todo_reason;

#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

static inline void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void diag(const char *fmt, ...) TAP_PRINTF(1, 2);
static inline void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

static inline void todo_begin(const char *why)
{
	tap_todo_reason = why;
}

static inline void todo_end(void)
{
	tap_todo_reason = NULL;
}

static inline bool tap_vok(bool cond, const char *file, int line, const char *fmt, va_list ap)
{
	tap_run_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_run_count);
	/* Descriptions must not contain '#' or newlines, which TAP reserves. */
	char desc[512];
	vsnprintf(desc, sizeof(desc), fmt, ap);
	for (char *p = desc; *p; p++)
		if (*p == '#' || *p == '\n' || *p == '\r')
			*p = '_';
	fputs(desc, stdout);
	if (tap_todo_reason)
		printf(" # TODO %s", tap_todo_reason);
	fputc('\n', stdout);
	if (!cond) {
		if (!tap_todo_reason)
			tap_fail_count++;
		printf("#   Failed%s test at %s line %d\n", tap_todo_reason ? " (TODO)" : "",
		       file, line);
	}
	fflush(stdout);
	return cond;
}

static inline bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
	TAP_PRINTF(4, 5);
static inline bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool r = tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}

static inline bool tap_is_int(long long got, long long want, const char *file, int line,
			      const char *fmt, ...) TAP_PRINTF(5, 6);
static inline bool tap_is_int(long long got, long long want, const char *file, int line,
			      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool r = tap_vok(got == want, file, line, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#          got: %lld (0x%llx)\n#     expected: %lld (0x%llx)\n", got,
		       (unsigned long long)got, want, (unsigned long long)want);
	return r;
}

static inline void tap_dump(const char *label, const void *p, size_t n)
{
	const unsigned char *b = p;
	printf("# %8s (%zu bytes): ", label, n);
	if (!b) {
		fputs("NULL\n", stdout);
		return;
	}
	size_t show = n < 64 ? n : 64;
	for (size_t i = 0; i < show; i++) {
		if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
			putchar(b[i]);
		else
			printf("\\x%02x", b[i]);
	}
	fputs(n > show ? "...\n" : "\n", stdout);
}

static inline bool tap_is_mem(const void *got, size_t gn, const void *want, size_t wn,
			      const char *file, int line, const char *fmt, ...) TAP_PRINTF(7, 8);
static inline bool tap_is_mem(const void *got, size_t gn, const void *want, size_t wn,
			      const char *file, int line, const char *fmt, ...)
{
	bool same = gn == wn && (gn == 0 || (got && want && memcmp(got, want, gn) == 0));
	va_list ap;
	va_start(ap, fmt);
	bool r = tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (!r) {
		tap_dump("got", got, gn);
		tap_dump("expected", want, wn);
	}
	return r;
}

static inline bool tap_is_str(const char *got, const char *want, const char *file, int line,
			      const char *fmt, ...) TAP_PRINTF(5, 6);
static inline bool tap_is_str(const char *got, const char *want, const char *file, int line,
			      const char *fmt, ...)
{
	bool same = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
	va_list ap;
	va_start(ap, fmt);
	bool r = tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (!r) {
		printf("#          got: %s%s%s\n", got ? "\"" : "", got ? got : "NULL",
		       got ? "\"" : "");
		printf("#     expected: %s%s%s\n", want ? "\"" : "", want ? want : "NULL",
		       want ? "\"" : "");
	}
	return r;
}

static inline void skip(int n, const char *why)
{
	for (int i = 0; i < n; i++) {
		tap_run_count++;
		printf("ok %d # SKIP %s\n", tap_run_count, why);
	}
	fflush(stdout);
}

/* Stop the whole program: the remaining tests cannot run meaningfully. */
static inline void bail_out(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(255);
}

static inline int done_testing(void)
{
	if (tap_planned < 0) {
		printf("1..%d\n", tap_run_count);
	} else if (tap_planned != tap_run_count) {
		diag("planned %d tests but ran %d", tap_planned, tap_run_count);
		return 255;
	}
	fflush(stdout);
	if (tap_fail_count)
		diag("%d of %d tests failed", tap_fail_count, tap_run_count);
	return tap_fail_count ? 1 : 0;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, gn, want, wn, ...) \
	tap_is_mem((got), (gn), (want), (wn), __FILE__, __LINE__, __VA_ARGS__)

#endif
