/* SPDX-License-Identifier: MIT */
/*
 * Replay driver for the fuzz targets when they are built without libFuzzer
 * (plain gcc, `meson test`): every file named on the command line, or found
 * in a directory named there (sorted, not recursive), goes once through
 * LLVMFuzzerTestOneInput.  Output is TAP, one "ok N - file" per input.
 * Each input runs in a child process (forked after LLVMFuzzerInitialize),
 * so a crash, a sanitizer report or a leak is "not ok" for that input and
 * the rest of the corpus still runs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Present in ASan/LSan builds: a child ends with _exit(), so ask for the
 * leak check that exit() would have done. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static int ntests;
static int nfail;

static void run_file(const char *path, const char *label)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %d - %s # cannot open: %s\n", ++ntests, label, strerror(errno));
		nfail++;
		return;
	}
	size_t cap = 4096, n = 0;
	uint8_t *p = malloc(cap);
	for (;;) {
		if (!p)
			break;
		if (n == cap) {
			uint8_t *np = realloc(p, cap * 2);
			if (!np) {
				free(p);
				p = NULL;
				break;
			}
			p = np;
			cap *= 2;
		}
		size_t k = fread(p + n, 1, cap - n, f);
		if (k == 0)
			break;
		n += k;
	}
	bool bad = ferror(f) || !p;
	fclose(f);
	if (bad) {
		printf("not ok %d - %s # read error\n", ++ntests, label);
		nfail++;
		free(p);
		return;
	}
	/* An exact-size copy, so ASan sees reads past the input's end. */
	uint8_t *exact = malloc(n ? n : 1);
	if (exact && n)
		memcpy(exact, p, n);
	free(p);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		LLVMFuzzerTestOneInput(exact, n);
		free(exact);
		int leaked = __lsan_do_recoverable_leak_check ? __lsan_do_recoverable_leak_check() : 0;
		fflush(stdout);
		_exit(leaked ? 1 : 0); /* no atexit handlers: they belong to the parent */
	}
	free(exact);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0) {
		printf("not ok %d - %s # cannot fork: %s\n", ++ntests, label, strerror(errno));
		nfail++;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		printf("ok %d - %s (%zu bytes)\n", ++ntests, label, n);
	} else {
		nfail++;
		if (WIFSIGNALED(st))
			printf("not ok %d - %s (%zu bytes) # killed by signal %d\n", ++ntests, label, n,
			       WTERMSIG(st));
		else
			printf("not ok %d - %s (%zu bytes) # exit status %d\n", ++ntests, label, n,
			       WEXITSTATUS(st));
	}
	fflush(stdout);
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, cmp_names);
	if (n < 0) {
		printf("not ok %d - %s # cannot list: %s\n", ++ntests, dir, strerror(errno));
		nfail++;
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		if (name[0] != '.') {
			size_t len = strlen(dir) + strlen(name) + 2;
			char *path = malloc(len);
			if (path) {
				snprintf(path, len, "%s/%s", dir, name);
				struct stat st;
				if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
					run_file(path, name);
				free(path);
			}
		}
		free(ents[i]);
	}
	free(ents);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			run_dir(argv[i]);
		else
			run_file(argv[i], argv[i]);
	}
	if (ntests == 0) {
		/* An empty corpus tests nothing: say so loudly. */
		printf("not ok 1 - no inputs found\n1..1\n");
		return 1;
	}
	printf("1..%d\n", ntests);
	return nfail ? 1 : 0;
}
