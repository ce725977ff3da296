/* SPDX-License-Identifier: MIT */
#include "sig.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>

static const struct {
	int no;
	const char *name;
} sigs[] = {
	/* RFC 4254 6.10 names first, then common Linux extras as OpenSSH does. */
	{ SIGABRT, "ABRT" }, { SIGALRM, "ALRM" }, { SIGFPE, "FPE" },   { SIGHUP, "HUP" },
	{ SIGILL, "ILL" },   { SIGINT, "INT" },   { SIGKILL, "KILL" }, { SIGPIPE, "PIPE" },
	{ SIGQUIT, "QUIT" }, { SIGSEGV, "SEGV" }, { SIGTERM, "TERM" }, { SIGUSR1, "USR1" },
	{ SIGUSR2, "USR2" }, { SIGBUS, "BUS" },	  { SIGCHLD, "CHLD" }, { SIGCONT, "CONT" },
	{ SIGSTOP, "STOP" }, { SIGTSTP, "TSTP" }, { SIGTTIN, "TTIN" }, { SIGTTOU, "TTOU" },
	{ SIGURG, "URG" },   { SIGXCPU, "XCPU" }, { SIGXFSZ, "XFSZ" }, { SIGVTALRM, "VTALRM" },
	{ SIGPROF, "PROF" }, { SIGWINCH, "WINCH" }, { SIGSYS, "SYS" }, { SIGTRAP, "TRAP" },
};

const char *sig_name(int signo)
{
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigs[i].no == signo)
			return sigs[i].name;
	return NULL;
}

int sig_number(const char *name)
{
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(sigs[i].name, name) == 0)
			return sigs[i].no;
	return 0;
}
