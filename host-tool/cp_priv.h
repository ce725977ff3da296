/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of wicket cp (cp.c operands and main, cp_upload.c,
 * cp_download.c): the copy's state, failure reporting, names and paths.
 */
#ifndef WICKET_CP_PRIV_H
#define WICKET_CP_PRIV_H

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "progress.h"
#include "sftp_client.h"

/* A remote tree deeper than this is refused (a server can fake depth). */
#define CP_MAX_DEPTH 128
/* Entries kept per remote directory listing. */
#define CP_MAX_ENTRIES (1u << 20)

static inline void cp_freep(void *p)
{
	free(*(void **)p);
}

static inline void cp_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void cp_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define AUTOFREE __attribute__((cleanup(cp_freep)))
#define AUTOCLOSE __attribute__((cleanup(cp_closep)))
#define AUTOCLOSEDIR __attribute__((cleanup(cp_closedirp)))

struct cp {
	struct sftp *s;
	const char *target; /* TARGET of the remote operands, for messages */
	bool recursive, preserve, quiet, resume;
	mode_t umask;
	struct progress pr;
	int failures;
	int sigfd;
	int signo; /* first INT/TERM/HUP seen */
	struct watch wsig;
};

/* Result of one item: CP_OK, CP_FAILED (reported, go on), CP_STOP (session over). */
enum { CP_OK = 0, CP_FAILED = 1, CP_STOP = -1 };

/* "wicket: cp: PATH: REASON" for a local / remote (TARGET:PATH) path; CP_FAILED. */
int cp_fail(struct cp *cp, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cp_rfail(struct cp *cp, const char *rpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Map an sftp call's result on remote @path: CP_OK, reported CP_FAILED, or CP_STOP. */
int cp_sftp(struct cp *cp, int r, const char *path);

/* Heap strings; out of memory ends the process (exit 255). */
char *cp_path_join(const char *dir, const char *name);
char *cp_strdup(const char *s);
char *cp_strip_slashes(const char *path);
/* Name a source gets at the destination; NULL for "/", "." and "..". */
const char *cp_top_name(const char *stripped);
/* Directory ("" = current) and last component of @path. */
void cp_path_split(const char *path, char **dir, const char **base);
const char *cp_base_of(const char *path);
/* ".NAME.wicket-XXXXXX", or ".NAME.wicket-part" under --resume. */
void cp_temp_name(char out[NAME_MAX + 1], const char *name, bool resume);

/* File type bits from sftp attributes (0 when the server gave none). */
mode_t cp_attr_type(const struct sftp_attrs *a);
/* Mode for a new file or directory: no set-id bits; umask applied unless -p. */
mode_t cp_final_mode(const struct cp *cp, uint32_t perm, bool dir);
/* sftp_progress_fn feeding the progress bar; @arg is the struct cp. */
void cp_progress(void *arg, uint64_t done);

int cp_upload(struct cp *cp, char **srcs, int nsrc, const char *dst_arg);
int cp_download(struct cp *cp, char **srcs, int nsrc, const char *dst_arg);

#endif
