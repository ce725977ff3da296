/* SPDX-License-Identifier: MIT */
#include "sftp.h"

#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

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

static char sftp_type_char(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: return 'd';
	case S_IFLNK: return 'l';
	case S_IFCHR: return 'c';
	case S_IFBLK: return 'b';
	case S_IFIFO: return 'p';
	case S_IFSOCK: return 's';
	case S_IFREG: return '-';
	default: return '?';
	}
}

/* strmode(3) without the BSD trailing space: "drwxr-sr-t". */
static void sftp_mode_string(uint32_t m, char s[11])
{
	s[0] = sftp_type_char(m);
	s[1] = m & S_IRUSR ? 'r' : '-';
	s[2] = m & S_IWUSR ? 'w' : '-';
	s[3] = m & S_ISUID ? (m & S_IXUSR ? 's' : 'S') : (m & S_IXUSR ? 'x' : '-');
	s[4] = m & S_IRGRP ? 'r' : '-';
	s[5] = m & S_IWGRP ? 'w' : '-';
	s[6] = m & S_ISGID ? (m & S_IXGRP ? 's' : 'S') : (m & S_IXGRP ? 'x' : '-');
	s[7] = m & S_IROTH ? 'r' : '-';
	s[8] = m & S_IWOTH ? 'w' : '-';
	s[9] = m & S_ISVTX ? (m & S_IXOTH ? 't' : 'T') : (m & S_IXOTH ? 'x' : '-');
	s[10] = 0;
}

void sftp_longname(char *out, size_t len, const char *name, const struct sftp_attrs *a,
		   uint32_t nlink, const char *user, const char *group, int64_t now)
{
	char mode[11], ubuf[16], gbuf[16], date[32];
	sftp_mode_string(a->flags & SSH_FILEXFER_ATTR_PERMISSIONS ? a->perm : 0, mode);
	if (!user) {
		snprintf(ubuf, sizeof(ubuf), "%u", (unsigned)a->uid);
		user = ubuf;
	}
	if (!group) {
		snprintf(gbuf, sizeof(gbuf), "%u", (unsigned)a->gid);
		group = gbuf;
	}
	/* Like ls: time of day within the last six months, else the year. */
	time_t t = (time_t)a->mtime;
	struct tm tm;
	date[0] = 0;
	if (localtime_r(&t, &tm)) {
		bool recent = (int64_t)t <= now && now - (int64_t)t < 365 * 24 * 3600 / 2;
		strftime(date, sizeof(date), recent ? "%b %e %H:%M" : "%b %e  %Y", &tm);
	}
	snprintf(out, len, "%s %4u %-8s %-8s %8llu %s %s", mode, (unsigned)nlink, user, group,
		 (unsigned long long)a->size, date, name);
}
