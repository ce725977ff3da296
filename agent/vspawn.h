/* SPDX-License-Identifier: MIT */
#ifndef WICKET_AGENT_VSPAWN_H
#define WICKET_AGENT_VSPAWN_H

#include <sys/types.h>

/*
 * Run @fn(@arg) in a child that borrows our memory (clone CLONE_VM |
 * CLONE_VFORK): it must end in execve() or _exit(), write only to its own
 * stack and what @arg points to, and touch no locks (no malloc, no stdio).
 * Returns once the child has exec'd or exited: its pid, or -1 with errno.
 * @fn's return value is the child's exit status.
 */
pid_t vspawn_run(int (*fn)(void *), void *arg);

#endif
