/* SPDX-License-Identifier: MIT */
/*
 * vfork-style process start for the monitor: the child shares our memory
 * until it calls execve() or exits, and we sleep until then.  Nothing is
 * copied, which matters where page tables and copy-on-write faults are
 * expensive (an emulated guest: a fork there costs milliseconds).
 */
#include "vspawn.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

/* exec_search()'s path buffer and libc's execve() fit with room to spare. */
#define VSPAWN_STACK (64 * 1024)

pid_t vspawn_run(int (*fn)(void *), void *arg)
{
#ifdef __SANITIZE_ADDRESS__
	/* ASan cannot follow instrumented code onto a borrowed stack. */
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
#else
	void *stack = mmap(NULL, VSPAWN_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	/* No CLONE_FILES/FS/SIGHAND: fds, cwd, umask and handlers stay ours. */
	pid_t pid = clone(fn, (char *)stack + VSPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
	int e = errno;
	munmap(stack, VSPAWN_STACK);
	errno = e;
	return pid;
#endif
}
