/* SPDX-License-Identifier: MIT */
/* Signal names as SSH carries them ("TERM", no "SIG" prefix). */
#ifndef WICKET_SIG_H
#define WICKET_SIG_H

/* Name for @signo, or NULL when SSH has no name for it. */
const char *sig_name(int signo);
/* Number for an SSH signal name (without "SIG"), or 0. */
int sig_number(const char *name);

#endif
