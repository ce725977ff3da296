/* SPDX-License-Identifier: MIT */
#include "sftp.h"

void sftp_attrs_get(struct rd *r, struct sftp_attrs *a)
{
	*a = (struct sftp_attrs){ 0 };
	a->flags = rd_u32(r);
	if (a->flags & SSH_FILEXFER_ATTR_SIZE)
		a->size = sftp_rd_u64(r);
	if (a->flags & SSH_FILEXFER_ATTR_UIDGID) {
		a->uid = rd_u32(r);
		a->gid = rd_u32(r);
	}
	if (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)
		a->perm = rd_u32(r);
	if (a->flags & SSH_FILEXFER_ATTR_ACMODTIME) {
		a->atime = rd_u32(r);
		a->mtime = rd_u32(r);
	}
	if (a->flags & SSH_FILEXFER_ATTR_EXTENDED) {
		uint32_t n = rd_u32(r);
		/* Each pair is at least 8 bytes: refuse counts the packet cannot hold. */
		if (n > rd_left(r) / 8) {
			r->err = true;
			return;
		}
		for (uint32_t i = 0; i < n && !r->err; i++) {
			rd_str(r);
			rd_str(r);
		}
	}
}

void sftp_attrs_put(struct buf *b, const struct sftp_attrs *a)
{
	uint32_t f = a->flags & ~SSH_FILEXFER_ATTR_EXTENDED;
	buf_u32(b, f);
	if (f & SSH_FILEXFER_ATTR_SIZE)
		sftp_buf_u64(b, a->size);
	if (f & SSH_FILEXFER_ATTR_UIDGID) {
		buf_u32(b, a->uid);
		buf_u32(b, a->gid);
	}
	if (f & SSH_FILEXFER_ATTR_PERMISSIONS)
		buf_u32(b, a->perm);
	if (f & SSH_FILEXFER_ATTR_ACMODTIME) {
		buf_u32(b, a->atime);
		buf_u32(b, a->mtime);
	}
}

const char *sftp_status_name(uint32_t code)
{
	static const char *const names[] = {
		"OK", "end of file", "no such file", "permission denied", "failure",
		"bad message", "no connection", "connection lost", "operation unsupported",
	};
	return code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown status";
}
