/* SPDX-License-Identifier: MIT */
/*
 * The one program of the container images the tests build (compiled with
 * cc -static; the image has no shell, no tar, no wicketd).  Its first
 * argument picks what it does:
 *   sleep          wait for SIGTERM (the container's init)
 *   args A...      print each argument on a line of its own
 *   exit N         exit with status N
 *   kill SIG       kill itself with signal SIG
 *   tty-size       "ROWS COLS" of the terminal on stdin, or "not a tty"
 *   stderr         "to-out" on stdout, "to-err" on stderr
 *   cat FILE       copy FILE to stdout
 *   fds            every open descriptor and what it is
 *   hold MARK      print "held MARK", then wait until stdin ends
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	if (strcmp(what, "sleep") == 0) {
		signal(SIGTERM, on_term);
		for (;;)
			pause();
	}
	if (strcmp(what, "args") == 0) {
		for (int i = 2; i < argc; i++)
			printf("%s\n", argv[i]);
		return 0;
	}
	if (strcmp(what, "exit") == 0 && argc > 2)
		return atoi(argv[2]);
	if (strcmp(what, "kill") == 0 && argc > 2) {
		int sig = atoi(argv[2]);
		signal(sig, SIG_DFL);
		kill(getpid(), sig);
		return 99;
	}
	if (strcmp(what, "tty-size") == 0) {
		struct winsize ws;
		if (ioctl(0, TIOCGWINSZ, &ws) < 0) {
			printf("not a tty\n");
			return 1;
		}
		printf("size %u %u\n", ws.ws_row, ws.ws_col);
		return 0;
	}
	if (strcmp(what, "stderr") == 0) {
		fputs("to-out\n", stdout);
		fflush(stdout);
		fputs("to-err\n", stderr);
		return 0;
	}
	if (strcmp(what, "cat") == 0 && argc > 2) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) {
			perror(argv[2]);
			return 1;
		}
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(1, buf, (size_t)n) != n)
				return 1;
		return n < 0;
	}
	if (strcmp(what, "fds") == 0) {
		for (int fd = 0; fd < 1024; fd++) {
			char p[64], t[256];
			snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(p, t, sizeof(t) - 1);
			if (n > 0) {
				t[n] = 0;
				printf("%d %s\n", fd, t);
			}
		}
		return 0;
	}
	if (strcmp(what, "hold") == 0) {
		printf("held %s\n", argc > 2 ? argv[2] : "");
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0) {
		}
		return 0;
	}
	fprintf(stderr, "ctr_prog: unknown request '%s'\n", what);
	return 2;
}
