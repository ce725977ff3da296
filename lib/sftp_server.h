/* SPDX-License-Identifier: MIT */
/*
 * SFTP v3 server core: packet decoding, the request table (names, read-only
 * flags, allow/deny), the handle table and reply encoding.  Everything that
 * touches a filesystem goes through struct sftp_backend_ops, so the decoder
 * runs as well over the POSIX backend (agent/sftp-server/posix.c) as over an
 * in-memory fake in a unit test or fuzzer.  Nothing here exits the process.
 */
#ifndef WICKET_SFTP_SERVER_H
#define WICKET_SFTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "sftp.h"

/* Replies to READDIR carry at most this many names (like OpenSSH). */
#define SFTP_READDIR_BATCH 100
/* Directory entries with longer names are skipped: bounds a NAME reply. */
#define SFTP_NAME_MAX 1024
#define SFTP_DEFAULT_MAX_HANDLES 256

/* One directory entry; name stays valid until the next readdir call. */
struct sftp_dirent {
	const char *name;
	struct sftp_attrs a; /* SIZE|UIDGID|PERMISSIONS|ACMODTIME, perm with type bits */
	uint32_t nlink;
};

struct sftp_statvfs {
	uint64_t bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag,
		namemax;
};

/*
 * Filesystem operations.  Paths are NUL-free C strings exactly as the client
 * sent them (relative ones are relative to the backend's start directory);
 * the backend does confinement.  Every function returns 0 or a negative
 * errno; strings it returns in *out are malloc'ed and owned by the caller.
 * Handles are the backend's own pointers, never shown to the client.
 */
struct sftp_backend_ops {
	int (*open)(void *be, const char *path, uint32_t pflags, const struct sftp_attrs *a,
		    void **fh);
	int (*close)(void *be, void *fh);
	/* Up to len bytes at off into buf; *got = 0 means end of file. */
	int (*read)(void *be, void *fh, uint64_t off, void *buf, size_t len, size_t *got);
	/*
	 * Optional, for zero-copy replies: like read, but the bytes go into
	 * the pipe @pipefd (kernel to kernel, e.g. splice(2)).  *got bytes
	 * were staged even when an error is returned with *got > 0.
	 */
	int (*read_pipe)(void *be, void *fh, uint64_t off, size_t len, int pipefd, size_t *got);
	/* All of len bytes, or an error. */
	int (*write)(void *be, void *fh, uint64_t off, const void *buf, size_t len);
	/*
	 * Optional, for zero-copy WRITEs: up to len bytes from the pipe
	 * @pipefd into the file at off (e.g. splice(2)), never waiting for
	 * the pipe.  *got bytes left the pipe even when an error is returned;
	 * -EAGAIN with *got 0: the pipe is empty; -EINVAL/-ENOSYS with *got 0:
	 * this file takes no splice (the data is then written the usual way).
	 */
	int (*write_pipe)(void *be, void *fh, uint64_t off, int pipefd, size_t len, size_t *got);
	int (*fstat)(void *be, void *fh, struct sftp_attrs *a);
	int (*fsetstat)(void *be, void *fh, const struct sftp_attrs *a);
	int (*fsync)(void *be, void *fh);
	/* Exclusive advisory lock for as long as @fh is open; -EWOULDBLOCK when
	 * someone else holds one.  Optional (NULL: lock@wicket is refused). */
	int (*lock)(void *be, void *fh);
	int (*fstatvfs)(void *be, void *fh, struct sftp_statvfs *st);
	/* len 0: until end of file.  Source and destination are different handles. */
	int (*copy)(void *be, void *from, uint64_t from_off, uint64_t len, void *to,
		    uint64_t to_off);

	int (*opendir)(void *be, const char *path, void **dh);
	/* 1 with *e filled, 0 at the end, or a negative errno. */
	int (*readdir)(void *be, void *dh, struct sftp_dirent *e);
	int (*closedir)(void *be, void *dh);

	int (*stat)(void *be, const char *path, bool follow, struct sftp_attrs *a);
	int (*setstat)(void *be, const char *path, bool follow, const struct sftp_attrs *a);
	int (*statvfs)(void *be, const char *path, struct sftp_statvfs *st);
	int (*remove)(void *be, const char *path);
	int (*mkdir)(void *be, const char *path, const struct sftp_attrs *a);
	int (*rmdir)(void *be, const char *path);
	/* posix: replace an existing newpath; otherwise an existing one is an error. */
	int (*rename)(void *be, const char *from, const char *to, bool posix);
	int (*link)(void *be, const char *from, const char *to);
	int (*symlink)(void *be, const char *target, const char *linkpath);
	int (*readlink)(void *be, const char *path, char **out);
	/* Absolute canonical path as the client sees it ("" means "."). */
	int (*realpath)(void *be, const char *path, char **out);
	/* Home directory of user (NULL: the session user), as the client sees it. */
	int (*home)(void *be, const char *user, char **out);
	/* Names for longnames and users-groups-by-id; false when unknown. */
	bool (*user_name)(void *be, uint32_t uid, char *buf, size_t len);
	bool (*group_name)(void *be, uint32_t gid, char *buf, size_t len);
	/* Seconds since the epoch, for longname dates. */
	int64_t (*now)(void *be);
};

struct sftp_server_cfg {
	bool read_only;
	uint64_t denied;	/* bit i: request i of sftp_server_request_name() */
	unsigned max_handles;	/* 0: SFTP_DEFAULT_MAX_HANDLES */
	/*
	 * A pipe READ data is staged in when the backend has read_pipe; 0
	 * (stdin, never one) or negative: none.
	 * A DATA reply then ends its header in out and leaves its payload in
	 * the pipe: the caller writes out, then moves sftp_server_staged()
	 * bytes from the pipe, before the next sftp_server_input().
	 */
	int stage_fd;
	/*
	 * The caller can move WRITE payloads from its input pipe with
	 * sftp_server_direct_pipe() (needs the backend's write_pipe): it then
	 * reads at most sftp_server_want() bytes at a time.
	 */
	bool direct_in;
};

struct sftp_server;

struct sftp_server *sftp_server_new(const struct sftp_backend_ops *ops, void *be,
				    const struct sftp_server_cfg *cfg);
/* Closes every handle still open through the backend. */
void sftp_server_free(struct sftp_server *s);

/*
 * Handle one packet (without its length field) and append the reply to out.
 * Malformed input gets SSH_FX_BAD_MESSAGE when an id could be read, and is
 * otherwise dropped with a log line.  Returns 0, or -ENOBUFS when out
 * overflowed (out is then unusable).
 */
int sftp_server_packet(struct sftp_server *s, struct sv pkt, struct buf *out);

/*
 * Consume every complete packet from in, appending replies to out, until out
 * holds at least out_high bytes.  Returns 0, -EMSGSIZE when a packet's
 * length exceeds SFTP_MAX_PACKET (the stream cannot be resynchronised: end
 * the session), or -ENOBUFS from sftp_server_packet().
 */
int sftp_server_input(struct sftp_server *s, struct buf *in, struct buf *out, size_t out_high);

/*
 * Direct WRITE input (cfg.direct_in).  A big WRITE whose header is in and
 * whose payload mostly is not is validated as usual when its header
 * arrives; its payload is then taken from the stream: by
 * sftp_server_direct_pipe(), or as bytes the caller reads into @in for
 * sftp_server_input() (a refused WRITE's are dropped).  The status reply
 * follows the last payload byte.  How much to read next without reading a
 * payload that could be spliced (header-exact while uploads run):
 */
size_t sftp_server_want(const struct sftp_server *s, const struct buf *in, size_t max);
/* Payload bytes of the current direct WRITE still in the stream. */
size_t sftp_server_direct_left(const struct sftp_server *s);
/*
 * Splice them from @fd into the file (the status reply goes to @out after
 * the last).  Bytes moved; 0: read them instead (refused request, a file
 * that takes no splice, end of input); -EAGAIN: @fd is empty.
 */
ssize_t sftp_server_direct_pipe(struct sftp_server *s, int fd, struct buf *out);

/* Bytes of the last reply still in cfg.stage_fd (see there); 0 = none. */
size_t sftp_server_staged(const struct sftp_server *s);
/* The caller has moved them behind out's bytes. */
void sftp_server_staged_done(struct sftp_server *s);

/* Request names as `-Q requests` lists them; NULL past the end. */
const char *sftp_server_request_name(size_t i);
/* Set (deny) or keep-only (allow) the comma-separated requests in cfg->denied;
 * -EINVAL with *bad pointing at the unknown name's start. */
int sftp_server_filter(struct sftp_server_cfg *cfg, const char *list, bool allow,
		       const char **bad);

/* Status code for an errno value (positive). */
uint32_t sftp_status_from_errno(int e);

#endif
