/* SPDX-License-Identifier: MIT */
/*
 * SFTP version 3 (draft-ietf-secsh-filexfer-02) constants and the attribute
 * codec shared by wicket-sftp-server and the host's sftp client.
 */
#ifndef WICKET_SFTP_H
#define WICKET_SFTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SFTP_VERSION 3

enum sftp_type {
	SSH_FXP_INIT = 1,
	SSH_FXP_VERSION = 2,
	SSH_FXP_OPEN = 3,
	SSH_FXP_CLOSE = 4,
	SSH_FXP_READ = 5,
	SSH_FXP_WRITE = 6,
	SSH_FXP_LSTAT = 7,
	SSH_FXP_FSTAT = 8,
	SSH_FXP_SETSTAT = 9,
	SSH_FXP_FSETSTAT = 10,
	SSH_FXP_OPENDIR = 11,
	SSH_FXP_READDIR = 12,
	SSH_FXP_REMOVE = 13,
	SSH_FXP_MKDIR = 14,
	SSH_FXP_RMDIR = 15,
	SSH_FXP_REALPATH = 16,
	SSH_FXP_STAT = 17,
	SSH_FXP_RENAME = 18,
	SSH_FXP_READLINK = 19,
	SSH_FXP_SYMLINK = 20,
	SSH_FXP_STATUS = 101,
	SSH_FXP_HANDLE = 102,
	SSH_FXP_DATA = 103,
	SSH_FXP_NAME = 104,
	SSH_FXP_ATTRS = 105,
	SSH_FXP_EXTENDED = 200,
	SSH_FXP_EXTENDED_REPLY = 201,
};

enum sftp_status {
	SSH_FX_OK = 0,
	SSH_FX_EOF = 1,
	SSH_FX_NO_SUCH_FILE = 2,
	SSH_FX_PERMISSION_DENIED = 3,
	SSH_FX_FAILURE = 4,
	SSH_FX_BAD_MESSAGE = 5,
	SSH_FX_NO_CONNECTION = 6,
	SSH_FX_CONNECTION_LOST = 7,
	SSH_FX_OP_UNSUPPORTED = 8,
};

/* SSH_FXP_OPEN pflags */
enum {
	SSH_FXF_READ = 0x01,
	SSH_FXF_WRITE = 0x02,
	SSH_FXF_APPEND = 0x04,
	SSH_FXF_CREAT = 0x08,
	SSH_FXF_TRUNC = 0x10,
	SSH_FXF_EXCL = 0x20,
};

/* Attribute flags */
enum {
	SSH_FILEXFER_ATTR_SIZE = 0x01,
	SSH_FILEXFER_ATTR_UIDGID = 0x02,
	SSH_FILEXFER_ATTR_PERMISSIONS = 0x04,
	SSH_FILEXFER_ATTR_ACMODTIME = 0x08,
};
#define SSH_FILEXFER_ATTR_EXTENDED 0x80000000u

/* Largest sftp packet either side accepts (length field). */
#define SFTP_MAX_PACKET (256u * 1024u + 1024u)
/* Largest READ/WRITE payload (fits a packet with its header). */
#define SFTP_MAX_DATA (255u * 1024u)

struct sftp_attrs {
	uint32_t flags;
	uint64_t size;
	uint32_t uid, gid;
	uint32_t perm;
	uint32_t atime, mtime;
};

/* Parse ATTRS; extended pairs are skipped.  Errors stick in @r. */
void sftp_attrs_get(struct rd *r, struct sftp_attrs *a);
void sftp_attrs_put(struct buf *b, const struct sftp_attrs *a);

static inline uint64_t sftp_rd_u64(struct rd *r)
{
	uint64_t hi = rd_u32(r);
	return hi << 32 | rd_u32(r);
}

static inline void sftp_buf_u64(struct buf *b, uint64_t v)
{
	buf_u32(b, (uint32_t)(v >> 32));
	buf_u32(b, (uint32_t)v);
}

/* Human-readable name of a status code, for messages. */
const char *sftp_status_name(uint32_t code);

/* statvfs@openssh.com f_flag bits */
#define SSH_FXE_STATVFS_ST_RDONLY 0x1
#define SSH_FXE_STATVFS_ST_NOSUID 0x2

/*
 * The `ls -l` line of a NAME entry ("longname"), laid out like OpenSSH's
 * sftp-server so clients that print it verbatim (psftp, sftp's `ls -l`)
 * line up: mode, links, user, group, size, date, name.  user/group NULL
 * print the numeric ids; now (epoch seconds) picks the date format.
 */
void sftp_longname(char *out, size_t len, const char *name, const struct sftp_attrs *a,
		   uint32_t nlink, const char *user, const char *group, int64_t now);

#endif
