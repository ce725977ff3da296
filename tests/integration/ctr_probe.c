/* SPDX-License-Identifier: MIT */
/*
 * The one program of the test containers (test_nsenter.py, test_docker.py):
 * static, no shell, no tar.  `probe WHAT ARGS...`:
 *   argv A...      each argument on a line as [A]
 *   exit N         exit status N
 *   kill N         die of signal N
 *   err            "out" on stdout, "err" on stderr
 *   cat FILE       FILE to stdout
 *   stdin          stdin to stdout
 *   sleep N [TAG]  sleep N seconds (TAG only marks the process)
 *   fds            this process's fds: "N TARGET"
 *   allfds         every visible process's fds: "PID N TARGET"
 *   ps             "PID COMM" of every visible process
 *   status [PID]   /proc/PID/status (default self)
 *   ppid           the parent's pid
 *   exe PID        readlink /proc/PID/exe
 *   openw PATH     open PATH for writing: "ok" or the error
 *   symlink T L    symlink(T, L)
 *   hostname       the UTS hostname
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static int cat_fd(int fd)
{
	char b[65536];
	ssize_t n;
	while ((n = read(fd, b, sizeof(b))) > 0)
		if (fwrite(b, 1, (size_t)n, stdout) != (size_t)n)
			return 1;
	return n < 0;
}

static void fds_of(const char *pid, const char *prefix)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512], t[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		if (n < 0)
			continue;
		t[n] = 0;
		printf("%s%s %s\n", prefix, e->d_name, t);
	}
	closedir(d);
}

static void each_pid(void (*fn)(const char *))
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
			fn(e->d_name);
	if (d)
		closedir(d);
}

static void allfds_one(const char *pid)
{
	char pre[32];
	snprintf(pre, sizeof(pre), "%s ", pid);
	fds_of(pid, pre);
}

static void ps_one(const char *pid)
{
	char p[64], c[256] = "";
	snprintf(p, sizeof(p), "/proc/%s/comm", pid);
	FILE *f = fopen(p, "r");
	if (f) {
		if (!fgets(c, sizeof(c), f))
			c[0] = 0;
		fclose(f);
	}
	c[strcspn(c, "\n")] = 0;
	printf("%s %s\n", pid, c);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe WHAT ARGS...\n");
		return 2;
	}
	const char *w = argv[1];
	if (!strcmp(w, "argv")) {
		for (int i = 2; i < argc; i++)
			printf("[%s]\n", argv[i]);
	} else if (!strcmp(w, "exit") && argc > 2) {
		return atoi(argv[2]);
	} else if (!strcmp(w, "kill") && argc > 2) {
		int s = atoi(argv[2]);
		signal(s, SIG_DFL);
		fflush(stdout);
		raise(s);
		return 99;
	} else if (!strcmp(w, "err")) {
		printf("out\n");
		fflush(stdout);
		fprintf(stderr, "err\n");
	} else if (!strcmp(w, "cat") && argc > 2) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "probe: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		return cat_fd(fd);
	} else if (!strcmp(w, "stdin")) {
		return cat_fd(0);
	} else if (!strcmp(w, "sleep") && argc > 2) {
		sleep((unsigned)atoi(argv[2]));
	} else if (!strcmp(w, "fds")) {
		fds_of("self", "");
	} else if (!strcmp(w, "allfds")) {
		each_pid(allfds_one);
	} else if (!strcmp(w, "ps")) {
		each_pid(ps_one);
	} else if (!strcmp(w, "status")) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%s/status", argc > 2 ? argv[2] : "self");
		int fd = open(p, O_RDONLY);
		return fd < 0 ? 1 : cat_fd(fd);
	} else if (!strcmp(w, "ppid")) {
		printf("%d\n", (int)getppid());
	} else if (!strcmp(w, "exe") && argc > 2) {
		char p[64], t[4096];
		snprintf(p, sizeof(p), "/proc/%s/exe", argv[2]);
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		if (n < 0) {
			printf("error %s\n", strerror(errno));
			return 1;
		}
		t[n] = 0;
		printf("%s\n", t);
	} else if (!strcmp(w, "openw") && argc > 2) {
		int fd = open(argv[2], O_WRONLY);
		if (fd < 0)
			printf("error %s\n", strerror(errno));
		else
			printf("ok\n");
	} else if (!strcmp(w, "symlink") && argc > 3) {
		if (symlink(argv[2], argv[3]) < 0) {
			fprintf(stderr, "probe: symlink: %s\n", strerror(errno));
			return 1;
		}
	} else if (!strcmp(w, "hostname")) {
		struct utsname u;
		uname(&u);
		printf("%s\n", u.nodename);
	} else {
		fprintf(stderr, "probe: unknown '%s'\n", w);
		return 2;
	}
	return 0;
}
