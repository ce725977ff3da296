/* SPDX-License-Identifier: MIT */
/*
 * Seccomp allowlists, declared next to the code that makes the calls (as
 * passt's "#syscalls" lines) and collected per process profile by
 * lib/sandbox.c.  Only data here: of lib/, only sandbox.c (its own static
 * library, libwicket-sandbox) links libseccomp.
 *
 *	SYSCALLS(conn) = { SC("read"), SC("write"), SC_END };
 *
 * A rule may restrict up to two arguments; several rules for one syscall
 * are alternatives (libseccomp ORs them).  Names the running architecture
 * lacks (poll on arm64) are skipped when the filter is built.
 */
#ifndef WICKET_SYSCALLS_H
#define WICKET_SYSCALLS_H

enum syscall_cmp {
	SC_CMP_NONE = 0,
	SC_CMP_EQ,	/* arg == a */
	SC_CMP_MASKED,	/* (arg & a) == b */
	SC_CMP_GE,	/* arg >= a (unsigned) */
};

struct syscall_cond {
	unsigned char cmp;	/* enum syscall_cmp */
	unsigned char arg;	/* argument index, 0..5 */
	unsigned long long a, b;
};

struct syscall_rule {
	const char *name;	/* NULL ends a list */
	struct syscall_cond cond[2];
};

#define SC(n) { .name = (n) }
/* Allowed only when argument @i equals @v. */
#define SC_EQ(n, i, v) { .name = (n), .cond = { { SC_CMP_EQ, (i), (unsigned long long)(v), 0 } } }
/* Allowed only when (argument @i & @m) == @v. */
#define SC_MASKED(n, i, m, v) \
	{ .name = (n), .cond = { { SC_CMP_MASKED, (i), (unsigned long long)(m), (unsigned long long)(v) } } }
/* Both conditions. */
#define SC_EQ_MASKED(n, i, v, j, m, w)                                                   \
	{ .name = (n), .cond = { { SC_CMP_EQ, (i), (unsigned long long)(v), 0 },           \
				 { SC_CMP_MASKED, (j), (unsigned long long)(m), (unsigned long long)(w) } } }
/* (argument @i >= @v) and (argument @j == @w): e.g. ioctl on no stdio fd. */
#define SC_GE_EQ(n, i, v, j, w)                                                          \
	{ .name = (n), .cond = { { SC_CMP_GE, (i), (unsigned long long)(v), 0 },           \
				 { SC_CMP_EQ, (j), (unsigned long long)(w), 0 } } }
#define SC_END { .name = 0 }

/* Declare the list of one source file: SYSCALLS(loop) = { ... }; */
#define SYSCALLS(tag) const struct syscall_rule tag##_syscalls[]
#define SYSCALLS_DECLARE(tag) extern const struct syscall_rule tag##_syscalls[]

#endif
