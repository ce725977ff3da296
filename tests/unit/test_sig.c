/* SPDX-License-Identifier: MIT */
/* lib/sig: SSH signal names ("TERM") to numbers and back. */
#include <signal.h>
#include <string.h>

#include "sig.h"
#include "tap.h"

int main(void)
{
	static const struct {
		int no;
		const char *name;
	} rfc[] = {
		{ SIGABRT, "ABRT" }, { SIGALRM, "ALRM" }, { SIGFPE, "FPE" },   { SIGHUP, "HUP" },
		{ SIGILL, "ILL" },   { SIGINT, "INT" },   { SIGKILL, "KILL" }, { SIGPIPE, "PIPE" },
		{ SIGQUIT, "QUIT" }, { SIGSEGV, "SEGV" }, { SIGTERM, "TERM" }, { SIGUSR1, "USR1" },
		{ SIGUSR2, "USR2" },
	};
	is_int(sig_number("TERM"), SIGTERM, "TERM -> SIGTERM");
	is_str(sig_name(SIGTERM), "TERM", "SIGTERM -> TERM");
	is_int(sig_number("KILL"), SIGKILL, "KILL -> SIGKILL");
	is_str(sig_name(SIGKILL), "KILL", "SIGKILL -> KILL");
	/* Every RFC 4254 6.10 name maps both ways. */
	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		is_int(sig_number(rfc[i].name), rfc[i].no, "%s -> %d", rfc[i].name, rfc[i].no);
		is_str(sig_name(rfc[i].no), rfc[i].name, "%d -> %s", rfc[i].no, rfc[i].name);
	}
	is_int(sig_number("WINCH"), SIGWINCH, "WINCH extra name");
	is_int(sig_number("NOSUCH"), 0, "unknown name -> 0");
	is_int(sig_number(""), 0, "empty name -> 0");
	is_int(sig_number("SIGTERM"), 0, "name with SIG prefix is not accepted");
	is_int(sig_number("term"), 0, "names are case-sensitive");
	is_int(sig_number("TERM "), 0, "trailing space not accepted");
	is_int(sig_number("TER"), 0, "prefix of a name not accepted");
	ok(sig_name(0) == NULL, "signal 0 has no name");
	ok(sig_name(-1) == NULL, "signal -1 has no name");
	ok(sig_name(SIGRTMIN) == NULL, "real-time signals have no name");
	ok(sig_name(100000) == NULL, "out-of-range signal has no name");
	return done_testing();
}
