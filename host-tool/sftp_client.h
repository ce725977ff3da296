/* SPDX-License-Identifier: MIT */
/*
 * An SFTP v3 client over one "subsystem sftp" session channel: request ids,
 * pipelined requests with completion callbacks, strict parsing of every
 * reply (the server is untrusted) in sftp_client.c; blocking helpers for the
 * metadata operations a copy needs in sftp_calls.c; pipelined whole-file
 * transfers in sftp_xfer.c.
 *
 * Return convention of the blocking calls: SFTP_OK, a positive SSH_FX_*
 * status from the server (sftp_error() has its text), or one of the
 * negative SFTP_E_* codes.
 */
#ifndef WICKET_SFTP_CLIENT_H
#define WICKET_SFTP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "sftp.h"
#include "tp.h"

struct loop;
struct sftp;

enum {
	SFTP_OK = 0,
	SFTP_E_LOCAL = -1, /* local I/O failed: sftp_error() has strerror text */
	SFTP_E_FATAL = -2, /* connection or protocol failure: the session is over */
	SFTP_E_INTR = -3,  /* sftp_interrupt() was called */
};

/* Handles are opaque strings of at most 256 bytes (draft-02 section 6.2). */
#define SFTP_HANDLE_MAX 256

struct sftp_handle {
	uint32_t len;
	uint8_t b[SFTP_HANDLE_MAX];
};

struct sftp_opts {
	const char *target;  /* for messages */
	FILE *pktlog;
	unsigned requests;   /* READ/WRITE requests in flight (0 = default) */
	uint32_t chunk;	     /* bytes per READ/WRITE (0 = SFTP_MAX_DATA) */
};

/* Server extensions we use, from the VERSION reply. */
struct sftp_exts {
	bool posix_rename, limits, fsync, lock;
	/* limits@openssh.com (0 = no limit given) */
	uint64_t max_packet, max_read, max_write;
};

/* One entry of a NAME reply; views valid during the callback only. */
struct sftp_name {
	struct sv name, longname;
	struct sftp_attrs attrs;
};

/* Connect over @tp, start the subsystem, exchange INIT/VERSION (and limits). */
struct sftp *sftp_connect(struct tp *tp, const struct sftp_opts *o, char *err, size_t errlen);
/* Orderly end (channel close, DISCONNECT), then free.  NULL is fine. */
void sftp_free(struct sftp *s);

/* Text for the last failure (server message, local strerror or fatal reason). */
const char *sftp_error(const struct sftp *s);
bool sftp_dead(const struct sftp *s);
/* The server offers lock@wicket (sftp_lock()). */
bool sftp_can_lock(const struct sftp *s);
/* The loop the client runs, for extra watches (signals). */
struct loop *sftp_loop(struct sftp *s);
/* Make waits in progress return SFTP_E_INTR at the next chance. */
void sftp_interrupt(struct sftp *s);
/* Give up waiting for the server after @ms milliseconds from now (cleanup). */
void sftp_set_deadline(struct sftp *s, int ms);

/* Blocking metadata operations. */
int sftp_stat(struct sftp *s, const char *path, bool follow, struct sftp_attrs *a);
int sftp_open(struct sftp *s, const char *path, uint32_t pflags, const struct sftp_attrs *a,
	      struct sftp_handle *h);
int sftp_opendir(struct sftp *s, const char *path, struct sftp_handle *h);
int sftp_close(struct sftp *s, const struct sftp_handle *h);
int sftp_fsetstat(struct sftp *s, const struct sftp_handle *h, const struct sftp_attrs *a);
/*
 * lock@wicket: an exclusive lock on the open file until it is closed.
 * SSH_FX_OP_UNSUPPORTED when the server does not offer it; SSH_FX_FAILURE
 * ("locked by another client") when another session holds it.
 */
int sftp_lock(struct sftp *s, const struct sftp_handle *h);
int sftp_setstat(struct sftp *s, const char *path, const struct sftp_attrs *a);
int sftp_mkdir(struct sftp *s, const char *path, const struct sftp_attrs *a);
int sftp_remove(struct sftp *s, const char *path);
/* Replace @to atomically (posix-rename@openssh.com) when the server can. */
int sftp_rename(struct sftp *s, const char *from, const char *to);
int sftp_symlink(struct sftp *s, const char *target, const char *linkpath);
/* *@out is a heap string (no NUL inside guaranteed); caller frees. */
int sftp_readlink(struct sftp *s, const char *path, char **out);

/*
 * One READDIR round: @fn is called for every entry; SSH_FX_EOF at the end.
 * Names are whatever the server sent: the caller must validate them.
 */
typedef void (*sftp_name_fn)(void *arg, const struct sftp_name *n);
int sftp_readdir(struct sftp *s, const struct sftp_handle *h, sftp_name_fn fn, void *arg);

/* Called as bytes complete; @done counts from the transfer's start offset. */
typedef void (*sftp_progress_fn)(void *arg, uint64_t done);

/*
 * Pipelined transfers between an open remote handle and a local fd, from
 * @off on.  Download reads until the server says EOF (@size is the expected
 * end, used to size the pipeline); upload sends [off, size) read with
 * pread straight into the channel.  *@end gets the offset reached.
 */
int sftp_download(struct sftp *s, const struct sftp_handle *h, int fd, uint64_t off,
		  uint64_t size, sftp_progress_fn fn, void *arg, uint64_t *end);
int sftp_upload(struct sftp *s, const struct sftp_handle *h, int fd, uint64_t off, uint64_t size,
		sftp_progress_fn fn, void *arg);

#endif
