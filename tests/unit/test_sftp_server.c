/* SPDX-License-Identifier: MIT */
/*
 * lib/sftp_server: the decoder, dispatch table and handle table, driven over
 * an in-memory fake backend (no filesystem), plus sftp_longname().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "sftp.h"
#include "sftp_server.h"
#include "tap.h"

/* ------------------------------------------------------------ fake backend */

enum { F_FILE = 1, F_DIR, F_LINK };
#define NODES 400

struct node {
	char path[128];
	int type;
	uint8_t *data;
	size_t size;
	uint32_t mode;
	char target[128];
	int locks; /* handles holding lock@wicket on it */
};

struct fake {
	struct node n[NODES];
	int calls;	  /* backend calls that could change something */
	int fail_write;	  /* next write fails with this (negative errno), once */
	int open_handles; /* as the backend counts them */
	char last_symlink_target[128], last_symlink_path[128];
};

struct fh {
	struct node *n;
	uint32_t pflags;
	bool locked;
};

struct dh {
	char dir[128];
	int pos;
};

static struct node *fake_find(struct fake *f, const char *path)
{
	for (int i = 0; i < NODES; i++)
		if (f->n[i].type && strcmp(f->n[i].path, path) == 0)
			return &f->n[i];
	return NULL;
}

static struct node *fake_add(struct fake *f, const char *path, int type, uint32_t mode)
{
	for (int i = 0; i < NODES; i++) {
		if (!f->n[i].type) {
			f->n[i] = (struct node){ .type = type, .mode = mode };
			snprintf(f->n[i].path, sizeof(f->n[i].path), "%s", path);
			return &f->n[i];
		}
	}
	return NULL;
}

static void node_attrs(const struct node *n, struct sftp_attrs *a)
{
	uint32_t t = n->type == F_DIR ? S_IFDIR : n->type == F_LINK ? S_IFLNK : S_IFREG;
	*a = (struct sftp_attrs){ .flags = SSH_FILEXFER_ATTR_SIZE | SSH_FILEXFER_ATTR_UIDGID |
					   SSH_FILEXFER_ATTR_PERMISSIONS |
					   SSH_FILEXFER_ATTR_ACMODTIME,
				  .size = n->size, .uid = 1000, .gid = 1000,
				  .perm = t | n->mode, .atime = 1700000000, .mtime = 1700000000 };
}

static int fk_open(void *be, const char *path, uint32_t pf, const struct sftp_attrs *a, void **out)
{
	struct fake *f = be;
	struct node *n = fake_find(f, path);
	if (pf & (SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC | SSH_FXF_APPEND))
		f->calls++;
	if (!n) {
		if (!(pf & SSH_FXF_CREAT))
			return -ENOENT;
		n = fake_add(f, path, F_FILE, 0644);
		if (!n)
			return -ENOSPC;
	} else if (n->type == F_DIR) {
		return -EISDIR;
	}
	if (pf & SSH_FXF_TRUNC)
		n->size = 0;
	struct fh *h = malloc(sizeof(*h));
	*h = (struct fh){ .n = n, .pflags = pf };
	*out = h;
	f->open_handles++;
	return 0;
}

static int fk_close(void *be, void *h)
{
	((struct fake *)be)->open_handles--;
	if (((struct fh *)h)->locked)
		((struct fh *)h)->n->locks--;
	free(h);
	return 0;
}

static int fk_read(void *be, void *vh, uint64_t off, void *buf, size_t len, size_t *got)
{
	struct fh *h = vh;
	if (!(h->pflags & SSH_FXF_READ))
		return -EBADF;
	if (off >= h->n->size) {
		*got = 0;
		return 0;
	}
	size_t n = h->n->size - (size_t)off;
	if (n > len)
		n = len;
	memcpy(buf, h->n->data + off, n);
	*got = n;
	return 0;
}

static int fk_write(void *be, void *vh, uint64_t off, const void *buf, size_t len)
{
	struct fake *f = be;
	struct fh *h = vh;
	f->calls++;
	if (f->fail_write) {
		int e = f->fail_write;
		f->fail_write = 0;
		return e;
	}
	if (!(h->pflags & SSH_FXF_WRITE))
		return -EBADF;
	if (off + len > 64u << 20)
		return -EFBIG;
	if (off + len > h->n->size) {
		h->n->data = realloc(h->n->data, (size_t)(off + len));
		if (off > h->n->size)
			memset(h->n->data + h->n->size, 0, (size_t)off - h->n->size);
		h->n->size = (size_t)(off + len);
	}
	memcpy(h->n->data + off, buf, len);
	return 0;
}

static int fk_fstat(void *be, void *vh, struct sftp_attrs *a)
{
	node_attrs(((struct fh *)vh)->n, a);
	return 0;
}

static int fk_fsetstat(void *be, void *vh, const struct sftp_attrs *a)
{
	struct fake *f = be;
	f->calls++;
	if (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)
		((struct fh *)vh)->n->mode = a->perm & 07777;
	return 0;
}

static int fk_fsync(void *be, void *vh)
{
	((struct fake *)be)->calls++;
	return 0;
}

static int fk_lock(void *be, void *vh)
{
	struct fh *h = vh;
	if (h->locked)
		return 0;
	if (h->n->locks)
		return -EWOULDBLOCK;
	h->locked = true;
	h->n->locks++;
	return 0;
}

static int fk_fstatvfs(void *be, void *vh, struct sftp_statvfs *st)
{
	*st = (struct sftp_statvfs){ .bsize = 4096, .frsize = 4096, .blocks = 1000, .bfree = 500,
				     .bavail = 400, .files = 100, .ffree = 50, .favail = 40,
				     .fsid = 7, .flag = SSH_FXE_STATVFS_ST_NOSUID, .namemax = 255 };
	return 0;
}

static int fk_copy(void *be, void *from, uint64_t foff, uint64_t len, void *to, uint64_t toff)
{
	struct fh *a = from;
	if (foff >= a->n->size)
		return 0;
	size_t n = a->n->size - (size_t)foff;
	if (len && len < n)
		n = (size_t)len;
	return fk_write(be, to, toff, a->n->data + foff, n);
}

static int fk_opendir(void *be, const char *path, void **out)
{
	struct fake *f = be;
	struct node *n = fake_find(f, path);
	if (!n)
		return -ENOENT;
	if (n->type != F_DIR)
		return -ENOTDIR;
	struct dh *d = malloc(sizeof(*d));
	*d = (struct dh){ .pos = 0 };
	snprintf(d->dir, sizeof(d->dir), "%s", path);
	*out = d;
	f->open_handles++;
	return 0;
}

static int fk_readdir(void *be, void *vh, struct sftp_dirent *e)
{
	struct fake *f = be;
	struct dh *d = vh;
	size_t dl = strlen(d->dir);
	while (d->pos < NODES) {
		struct node *n = &f->n[d->pos++];
		if (!n->type || strncmp(n->path, d->dir, dl) != 0 || n->path[dl] != '/' ||
		    strchr(n->path + dl + 1, '/'))
			continue;
		e->name = n->path + dl + 1;
		node_attrs(n, &e->a);
		e->nlink = 1;
		return 1;
	}
	return 0;
}

static int fk_closedir(void *be, void *vh)
{
	((struct fake *)be)->open_handles--;
	free(vh);
	return 0;
}

static int fk_stat(void *be, const char *path, bool follow, struct sftp_attrs *a)
{
	struct node *n = fake_find(be, path);
	if (!n)
		return strcmp(path, "/forbidden") == 0 ? -EACCES : -ENOENT;
	if (follow && n->type == F_LINK) {
		n = fake_find(be, n->target);
		if (!n)
			return -ENOENT;
	}
	node_attrs(n, a);
	return 0;
}

static int fk_setstat(void *be, const char *path, bool follow, const struct sftp_attrs *a)
{
	struct fake *f = be;
	f->calls++;
	struct node *n = fake_find(f, path);
	if (!n)
		return -ENOENT;
	if (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)
		n->mode = a->perm & 07777;
	return 0;
}

static int fk_statvfs(void *be, const char *path, struct sftp_statvfs *st)
{
	return fk_fstatvfs(be, NULL, st);
}

static int fk_remove(void *be, const char *path)
{
	struct fake *f = be;
	f->calls++;
	struct node *n = fake_find(f, path);
	if (!n)
		return -ENOENT;
	free(n->data);
	*n = (struct node){ 0 };
	return 0;
}

static int fk_mkdir(void *be, const char *path, const struct sftp_attrs *a)
{
	struct fake *f = be;
	f->calls++;
	if (fake_find(f, path))
		return -EEXIST;
	return fake_add(f, path, F_DIR, 0755) ? 0 : -ENOSPC;
}

static int fk_rmdir(void *be, const char *path)
{
	return fk_remove(be, path);
}

static int fk_rename(void *be, const char *from, const char *to, bool posix)
{
	struct fake *f = be;
	f->calls++;
	struct node *n = fake_find(f, from);
	if (!n)
		return -ENOENT;
	if (fake_find(f, to) && !posix)
		return -EEXIST;
	snprintf(n->path, sizeof(n->path), "%s", to);
	return 0;
}

static int fk_link(void *be, const char *from, const char *to)
{
	((struct fake *)be)->calls++;
	return -EPERM;
}

static int fk_symlink(void *be, const char *target, const char *linkpath)
{
	struct fake *f = be;
	f->calls++;
	snprintf(f->last_symlink_target, sizeof(f->last_symlink_target), "%s", target);
	snprintf(f->last_symlink_path, sizeof(f->last_symlink_path), "%s", linkpath);
	struct node *n = fake_add(f, linkpath, F_LINK, 0777);
	if (!n)
		return -ENOSPC;
	snprintf(n->target, sizeof(n->target), "%s", target);
	n->size = strlen(target);
	return 0;
}

static int fk_readlink(void *be, const char *path, char **out)
{
	struct node *n = fake_find(be, path);
	if (!n)
		return -ENOENT;
	if (n->type != F_LINK)
		return -EINVAL;
	*out = strdup(n->target);
	return 0;
}

static int fk_realpath(void *be, const char *path, char **out)
{
	if (strcmp(path, ".") == 0)
		*out = strdup("/home/u");
	else if (path[0] == '/')
		*out = strdup(path);
	else {
		*out = malloc(strlen(path) + 9);
		sprintf(*out, "/home/u/%s", path);
	}
	return 0;
}

static int fk_home(void *be, const char *user, char **out)
{
	if (!user) {
		*out = strdup("/home/u");
		return 0;
	}
	if (strcmp(user, "bob") == 0) {
		*out = strdup("/home/bob");
		return 0;
	}
	return -ENOENT;
}

static bool fk_user(void *be, uint32_t id, char *buf, size_t len)
{
	if (id != 1000)
		return false;
	snprintf(buf, len, "alice");
	return true;
}

static bool fk_group(void *be, uint32_t id, char *buf, size_t len)
{
	if (id != 1000)
		return false;
	snprintf(buf, len, "staff");
	return true;
}

static int64_t fk_now(void *be)
{
	return 1700000000 + 3600;
}

static const struct sftp_backend_ops fake_ops = {
	.open = fk_open, .close = fk_close, .read = fk_read, .write = fk_write,
	.fstat = fk_fstat, .fsetstat = fk_fsetstat, .fsync = fk_fsync, .lock = fk_lock,
	.fstatvfs = fk_fstatvfs, .copy = fk_copy, .opendir = fk_opendir,
	.readdir = fk_readdir, .closedir = fk_closedir, .stat = fk_stat,
	.setstat = fk_setstat, .statvfs = fk_statvfs, .remove = fk_remove,
	.mkdir = fk_mkdir, .rmdir = fk_rmdir, .rename = fk_rename, .link = fk_link,
	.symlink = fk_symlink, .readlink = fk_readlink, .realpath = fk_realpath,
	.home = fk_home, .user_name = fk_user, .group_name = fk_group, .now = fk_now,
};

static void fake_free(struct fake *f)
{
	for (int i = 0; i < NODES; i++)
		free(f->n[i].data);
	free(f);
}

/* ------------------------------------------------------------ client side */

struct t {
	struct fake *f;
	struct sftp_server *s;
	struct buf out;
	struct buf req;
	uint32_t id;
	/* last reply */
	uint8_t type;
	uint32_t rid;
	uint8_t body[300 * 1024];
	size_t blen;
	int nreplies;
};

static struct t *t_new(const struct sftp_server_cfg *cfg)
{
	struct t *t = calloc(1, sizeof(*t));
	t->f = calloc(1, sizeof(*t->f));
	t->s = sftp_server_new(&fake_ops, t->f, cfg);
	buf_init(&t->out, 4u << 20);
	buf_init(&t->req, 1u << 20);
	t->id = 100;
	return t;
}

static void t_free(struct t *t)
{
	sftp_server_free(t->s);
	ok(t->f->open_handles == 0, "every backend handle closed when the server is freed");
	fake_free(t->f);
	buf_free(&t->out);
	buf_free(&t->req);
	free(t);
}

/* Start a request: type and (except INIT) the id; fields follow. */
static struct buf *rq(struct t *t, uint8_t type)
{
	buf_reset(&t->req);
	buf_u8(&t->req, type);
	if (type != SSH_FXP_INIT)
		buf_u32(&t->req, ++t->id);
	return &t->req;
}

static struct buf *rq_ext(struct t *t, const char *name)
{
	struct buf *b = rq(t, SSH_FXP_EXTENDED);
	buf_cstr(b, name);
	return b;
}

/* Send the built request; parse the one reply (if any) into t. */
static int send_raw(struct t *t, const void *p, size_t n)
{
	buf_reset(&t->out);
	int rc = sftp_server_packet(t->s, (struct sv){ p, n }, &t->out);
	t->nreplies = 0;
	t->type = 0;
	t->blen = 0;
	struct rd r;
	rd_init(&r, buf_data(&t->out), buf_used(&t->out));
	while (rd_left(&r)) {
		struct sv pk = rd_str(&r);
		if (r.err)
			break;
		t->nreplies++;
		struct rd pr;
		rd_init(&pr, pk.p, pk.n);
		t->type = rd_u8(&pr);
		if (t->type != SSH_FXP_VERSION)
			t->rid = rd_u32(&pr);
		struct sv rest = rd_rest(&pr);
		t->blen = rest.n < sizeof(t->body) ? rest.n : sizeof(t->body);
		memcpy(t->body, rest.p, t->blen);
	}
	return rc;
}

static void send_rq(struct t *t)
{
	send_raw(t, buf_data(&t->req), buf_used(&t->req));
}

static uint32_t status_code(struct t *t, char *msg, size_t len)
{
	if (t->type != SSH_FXP_STATUS)
		return 0xffffffff;
	struct rd r;
	rd_init(&r, t->body, t->blen);
	uint32_t code = rd_u32(&r);
	struct sv m = rd_str(&r);
	rd_str(&r);
	if (!rd_end(&r))
		return 0xfffffffe;
	if (msg)
		snprintf(msg, len, "%.*s", (int)m.n, (const char *)m.p);
	return code;
}

static void expect_status(struct t *t, uint32_t code, const char *what)
{
	char msg[256] = "";
	uint32_t got = status_code(t, msg, sizeof(msg));
	ok(got == code && t->rid == t->id && t->nreplies == 1,
	   "%s: status %s (got %d/%s, id %u of %u)", what, sftp_status_name(code), (int)got,
	   msg, t->rid, t->id);
}

/* OPEN path; returns the handle (8 bytes) or zeroes with a failed test. */
static struct sv do_open(struct t *t, const char *path, uint32_t pf, uint8_t hbuf[8])
{
	struct buf *b = rq(t, SSH_FXP_OPEN);
	buf_cstr(b, path);
	buf_u32(b, pf);
	buf_u32(b, 0);
	send_rq(t);
	if (t->type != SSH_FXP_HANDLE)
		return SV_NULL;
	struct rd r;
	rd_init(&r, t->body, t->blen);
	struct sv h = rd_str(&r);
	if (!rd_end(&r) || h.n != 8)
		return SV_NULL;
	memcpy(hbuf, h.p, 8);
	return (struct sv){ hbuf, 8 };
}

static void do_close(struct t *t, struct sv h)
{
	struct buf *b = rq(t, SSH_FXP_CLOSE);
	buf_sv(b, h);
	send_rq(t);
}

static void do_write(struct t *t, struct sv h, uint64_t off, const void *p, size_t n)
{
	struct buf *b = rq(t, SSH_FXP_WRITE);
	buf_sv(b, h);
	sftp_buf_u64(b, off);
	buf_str(b, p, n);
	send_rq(t);
}

static void do_read(struct t *t, struct sv h, uint64_t off, uint32_t len)
{
	struct buf *b = rq(t, SSH_FXP_READ);
	buf_sv(b, h);
	sftp_buf_u64(b, off);
	buf_u32(b, len);
	send_rq(t);
}

static void do_path(struct t *t, uint8_t type, const char *path)
{
	struct buf *b = rq(t, type);
	buf_cstr(b, path);
	send_rq(t);
}

/* ------------------------------------------------------------ tests */

static void test_init(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	struct buf *b = rq(t, SSH_FXP_INIT);
	buf_u32(b, 3);
	send_rq(t);
	is_int(t->type, SSH_FXP_VERSION, "INIT answered with VERSION");
	struct rd r;
	rd_init(&r, t->body, t->blen);
	is_int(rd_u32(&r), 3, "VERSION says 3");
	static const char *const want[][2] = {
		{ "posix-rename@openssh.com", "1" }, { "statvfs@openssh.com", "2" },
		{ "fstatvfs@openssh.com", "2" },     { "hardlink@openssh.com", "1" },
		{ "fsync@openssh.com", "1" },	     { "lsetstat@openssh.com", "1" },
		{ "limits@openssh.com", "1" },	     { "expand-path@openssh.com", "1" },
		{ "copy-data", "1" },		     { "home-directory", "1" },
		{ "users-groups-by-id@openssh.com", "1" }, { "lock@wicket", "1" },
	};
	bool all = true;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct sv n = rd_str(&r), v = rd_str(&r);
		if (!sv_eq(n, want[i][0]) || !sv_eq(v, want[i][1])) {
			diag("extension %zu: want %s %s", i, want[i][0], want[i][1]);
			all = false;
		}
	}
	ok(all && rd_end(&r), "VERSION advertises the 12 extensions with their versions");

	/* An INIT carrying extension pairs is fine too. */
	b = rq(t, SSH_FXP_INIT);
	buf_u32(b, 3);
	buf_cstr(b, "x@y");
	buf_cstr(b, "1");
	send_rq(t);
	is_int(t->type, SSH_FXP_VERSION, "INIT with client extensions answered");
	t_free(t);
}

static void test_file_io(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	uint8_t hb[8];
	struct sv h = do_open(t, "/f", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT, hb);
	ok(h.n == 8, "OPEN gives an 8-byte handle");
	do_write(t, h, 0, "hello world", 11);
	expect_status(t, SSH_FX_OK, "WRITE");
	do_write(t, h, 0, "", 0);
	expect_status(t, SSH_FX_OK, "zero-length WRITE");
	do_read(t, h, 6, 100);
	struct rd r;
	rd_init(&r, t->body, t->blen);
	struct sv d = rd_str(&r);
	ok(t->type == SSH_FXP_DATA && rd_end(&r) && t->rid == t->id, "READ gives DATA");
	is_mem(d.p, d.n, "world", 5, "READ returns the bytes at the offset");
	do_read(t, h, 11, 100);
	expect_status(t, SSH_FX_EOF, "READ at end of file");
	do_read(t, h, 0, 0);
	rd_init(&r, t->body, t->blen);
	d = rd_str(&r);
	ok(t->type == SSH_FXP_DATA && d.n == 0, "READ of 0 bytes gives empty DATA, not EOF");

	/* A huge read length is clamped to SFTP_MAX_DATA. */
	static uint8_t big[SFTP_MAX_DATA + 4096];
	memset(big, 'x', sizeof(big));
	do_write(t, h, 0, big, sizeof(big));
	expect_status(t, SSH_FX_OK, "WRITE of more than SFTP_MAX_DATA (it is in one packet)");
	do_read(t, h, 0, 0xffffffffu);
	rd_init(&r, t->body, t->blen);
	d = rd_str(&r);
	is_int(d.n, SFTP_MAX_DATA, "READ of 4 GiB is clamped to SFTP_MAX_DATA");

	struct buf *b = rq(t, SSH_FXP_FSTAT);
	buf_sv(b, h);
	send_rq(t);
	struct sftp_attrs a;
	rd_init(&r, t->body, t->blen);
	sftp_attrs_get(&r, &a);
	ok(t->type == SSH_FXP_ATTRS && rd_end(&r) && a.size == sizeof(big) &&
		   S_ISREG(a.perm),
	   "FSTAT gives ATTRS with size and type");

	/* ENOSPC: strerror text, FAILURE, and the next request works. */
	t->f->fail_write = -ENOSPC;
	do_write(t, h, 0, "x", 1);
	char msg[128];
	uint32_t code = status_code(t, msg, sizeof(msg));
	ok(code == SSH_FX_FAILURE && strstr(msg, "No space left on device"),
	   "ENOSPC: FAILURE \"%s\"", msg);
	do_write(t, h, 0, "y", 1);
	expect_status(t, SSH_FX_OK, "the write after ENOSPC");

	b = rq(t, SSH_FXP_FSETSTAT);
	buf_sv(b, h);
	sftp_attrs_put(b, &(struct sftp_attrs){ .flags = SSH_FILEXFER_ATTR_PERMISSIONS,
						 .perm = 0600 });
	send_rq(t);
	expect_status(t, SSH_FX_OK, "FSETSTAT");
	is_int(fake_find(t->f, "/f")->mode, 0600, "FSETSTAT reached the backend");

	b = rq_ext(t, "fsync@openssh.com");
	buf_sv(b, h);
	send_rq(t);
	expect_status(t, SSH_FX_OK, "fsync@openssh.com");

	/* lock@wicket: one holder per file until it closes its handle. */
	b = rq_ext(t, "lock@wicket");
	buf_sv(b, h);
	send_rq(t);
	expect_status(t, SSH_FX_OK, "lock@wicket");
	uint8_t hbl[8];
	struct sv hl = do_open(t, "/f", SSH_FXF_WRITE, hbl);
	b = rq_ext(t, "lock@wicket");
	buf_sv(b, hl);
	send_rq(t);
	char lmsg[64];
	uint32_t lcode = status_code(t, lmsg, sizeof(lmsg));
	ok(lcode == SSH_FX_FAILURE && strcmp(lmsg, "locked by another client") == 0,
	   "lock@wicket on a file locked through another handle: FAILURE \"%s\"", lmsg);
	b = rq_ext(t, "lock@wicket");
	buf_cstr(b, "nohandle");
	send_rq(t);
	expect_status(t, SSH_FX_FAILURE, "lock@wicket on an unknown handle");
	b = rq_ext(t, "lock@wicket");
	buf_sv(b, h);
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "lock@wicket with trailing bytes");

	b = rq_ext(t, "fstatvfs@openssh.com");
	buf_sv(b, h);
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	uint64_t v[11];
	for (int i = 0; i < 11; i++)
		v[i] = sftp_rd_u64(&r);
	ok(t->type == SSH_FXP_EXTENDED_REPLY && rd_end(&r) && v[0] == 4096 && v[9] == 2 &&
		   v[10] == 255,
	   "fstatvfs@openssh.com gives 11 uint64 fields");

	do_close(t, h);
	expect_status(t, SSH_FX_OK, "CLOSE");
	b = rq_ext(t, "lock@wicket");
	buf_sv(b, hl);
	send_rq(t);
	expect_status(t, SSH_FX_OK, "lock@wicket once the holder closed its handle");
	do_close(t, hl);
	expect_status(t, SSH_FX_OK, "CLOSE of the second handle");
	do_read(t, h, 0, 10);
	expect_status(t, SSH_FX_FAILURE, "READ on a closed handle");
	do_close(t, h);
	expect_status(t, SSH_FX_FAILURE, "second CLOSE of a handle");

	/* Reopen: the slot is reused but the old handle stays invalid. */
	uint8_t hb2[8];
	struct sv h2 = do_open(t, "/f", SSH_FXF_READ, hb2);
	ok(h2.n == 8 && memcmp(hb, hb2, 8) != 0, "a new OPEN gets a different handle");
	do_read(t, h, 0, 10);
	expect_status(t, SSH_FX_FAILURE, "the closed handle stays refused");
	do_read(t, h2, 0, 5);
	ok(t->type == SSH_FXP_DATA, "the new handle works");
	do_write(t, h2, 0, "z", 1);
	char m2[128];
	ok(status_code(t, m2, sizeof(m2)) == SSH_FX_FAILURE && strstr(m2, "Bad file descriptor"),
	   "WRITE on a read-only handle: the backend's error (%s)", m2);

	/* Handles of the wrong kind or shape. */
	do_read(t, (struct sv){ (const uint8_t *)"abc", 3 }, 0, 1);
	expect_status(t, SSH_FX_FAILURE, "3-byte handle");
	uint8_t bogus[8] = { 0, 0, 0, 200, 0, 0, 0, 1 };
	do_read(t, (struct sv){ bogus, 8 }, 0, 1);
	expect_status(t, SSH_FX_FAILURE, "handle with an out-of-range slot");

	b = rq(t, SSH_FXP_MKDIR);
	buf_cstr(b, "/d");
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_OK, "MKDIR");
	do_path(t, SSH_FXP_OPENDIR, "/d");
	struct sv dh = SV_NULL;
	uint8_t dhb[8];
	if (t->type == SSH_FXP_HANDLE) {
		memcpy(dhb, t->body + 4, 8);
		dh = (struct sv){ dhb, 8 };
	}
	ok(dh.n == 8, "OPENDIR gives a handle");
	do_read(t, dh, 0, 10);
	expect_status(t, SSH_FX_FAILURE, "READ on a directory handle");
	b = rq(t, SSH_FXP_READDIR);
	buf_sv(b, h2);
	send_rq(t);
	expect_status(t, SSH_FX_FAILURE, "READDIR on a file handle");
	do_close(t, dh);
	expect_status(t, SSH_FX_OK, "CLOSE of a directory handle");
	do_close(t, h2);
	t_free(t);
}

static void test_copy_data(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	uint8_t ha[8], hb[8];
	struct sv a = do_open(t, "/a", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT, ha);
	do_write(t, a, 0, "0123456789", 10);
	struct sv b = do_open(t, "/b", SSH_FXF_WRITE | SSH_FXF_CREAT, hb);
	struct buf *q = rq_ext(t, "copy-data");
	buf_sv(q, a);
	sftp_buf_u64(q, 2);
	sftp_buf_u64(q, 0); /* to the end */
	buf_sv(q, b);
	sftp_buf_u64(q, 1);
	send_rq(t);
	expect_status(t, SSH_FX_OK, "copy-data");
	struct node *n = fake_find(t->f, "/b");
	is_mem(n->data, n->size, "\0" "23456789", 9, "copy-data copied from offset 2 to offset 1");
	q = rq_ext(t, "copy-data");
	buf_sv(q, a);
	sftp_buf_u64(q, 0);
	sftp_buf_u64(q, 0);
	buf_sv(q, a);
	sftp_buf_u64(q, 100);
	send_rq(t);
	expect_status(t, SSH_FX_FAILURE, "copy-data onto the same handle");
	do_close(t, a);
	do_close(t, b);
	t_free(t);
}

static void test_max_handles(void)
{
	struct sftp_server_cfg cfg = { .max_handles = 3 };
	struct t *t = t_new(&cfg);
	fake_add(t->f, "/x", F_FILE, 0644);
	fake_add(t->f, "/dir", F_DIR, 0755);
	uint8_t hb[4][8];
	struct sv h[4];
	for (int i = 0; i < 3; i++)
		h[i] = do_open(t, "/x", SSH_FXF_READ, hb[i]);
	ok(h[0].n && h[1].n && h[2].n, "3 handles open under --max-handles 3");
	h[3] = do_open(t, "/x", SSH_FXF_READ, hb[3]);
	char msg[128];
	ok(!h[3].n && status_code(t, msg, sizeof(msg)) == SSH_FX_FAILURE &&
		   strcmp(msg, "too many open handles") == 0,
	   "the 4th OPEN: FAILURE \"too many open handles\"");
	do_path(t, SSH_FXP_OPENDIR, "/dir");
	expect_status(t, SSH_FX_FAILURE, "OPENDIR counts against the cap too");
	is_int(t->f->open_handles, 3, "the refused opens never reached the backend");
	do_close(t, h[1]);
	h[3] = do_open(t, "/x", SSH_FXF_READ, hb[3]);
	ok(h[3].n == 8, "after a CLOSE an OPEN works again");
	ok(memcmp(hb[1], hb[3], 4) == 0 && memcmp(hb[1], hb[3], 8) != 0,
	   "the freed slot is reused with a new generation");
	do_read(t, h[1], 0, 1);
	expect_status(t, SSH_FX_FAILURE, "the old handle of a reused slot is refused");
	t_free(t);
}

static void test_read_only(void)
{
	struct sftp_server_cfg cfg = { .read_only = true };
	struct t *t = t_new(&cfg);
	struct node *n = fake_add(t->f, "/x", F_FILE, 0644);
	n->data = (uint8_t *)strdup("data");
	n->size = 4;
	fake_add(t->f, "/d", F_DIR, 0755);
	static const uint32_t bad_flags[] = {
		SSH_FXF_WRITE, SSH_FXF_READ | SSH_FXF_WRITE, SSH_FXF_CREAT,
		SSH_FXF_READ | SSH_FXF_CREAT, SSH_FXF_TRUNC, SSH_FXF_APPEND,
		SSH_FXF_CREAT | SSH_FXF_EXCL,
	};
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		uint8_t hb[8];
		struct sv h = do_open(t, i % 2 ? "/new" : "/x", bad_flags[i], hb);
		ok(!h.n && status_code(t, NULL, 0) == SSH_FX_PERMISSION_DENIED,
		   "read-only: OPEN with pflags 0x%x refused", bad_flags[i]);
	}
	struct buf *b;
	b = rq(t, SSH_FXP_SETSTAT);
	buf_cstr(b, "/x");
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: SETSTAT");
	do_path(t, SSH_FXP_REMOVE, "/x");
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: REMOVE");
	b = rq(t, SSH_FXP_MKDIR);
	buf_cstr(b, "/m");
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: MKDIR");
	do_path(t, SSH_FXP_RMDIR, "/d");
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: RMDIR");
	b = rq(t, SSH_FXP_RENAME);
	buf_cstr(b, "/x");
	buf_cstr(b, "/y");
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: RENAME");
	b = rq(t, SSH_FXP_SYMLINK);
	buf_cstr(b, "/x");
	buf_cstr(b, "/l");
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: SYMLINK");
	static const char *const exts[] = { "posix-rename@openssh.com", "hardlink@openssh.com",
					    "lsetstat@openssh.com" };
	for (size_t i = 0; i < 3; i++) {
		b = rq_ext(t, exts[i]);
		buf_cstr(b, "/x");
		if (i == 2)
			buf_u32(b, 0);
		else
			buf_cstr(b, "/z");
		send_rq(t);
		expect_status(t, SSH_FX_PERMISSION_DENIED, exts[i]);
	}
	/* Reads go on working. */
	uint8_t hb[8];
	struct sv h = do_open(t, "/x", SSH_FXF_READ, hb);
	ok(h.n == 8, "read-only: OPEN for reading works");
	do_read(t, h, 0, 10);
	ok(t->type == SSH_FXP_DATA, "read-only: READ works");
	do_write(t, h, 0, "x", 1);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: WRITE");
	b = rq(t, SSH_FXP_FSETSTAT);
	buf_sv(b, h);
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: FSETSTAT");
	b = rq_ext(t, "fsync@openssh.com");
	buf_sv(b, h);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: fsync");
	b = rq_ext(t, "copy-data");
	buf_sv(b, h);
	sftp_buf_u64(b, 0);
	sftp_buf_u64(b, 0);
	buf_sv(b, h);
	sftp_buf_u64(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "read-only: copy-data");
	do_path(t, SSH_FXP_STAT, "/x");
	is_int(t->type, SSH_FXP_ATTRS, "read-only: STAT works");
	do_path(t, SSH_FXP_REALPATH, ".");
	is_int(t->type, SSH_FXP_NAME, "read-only: REALPATH works");
	is_int(t->f->calls, 0, "read-only: no changing backend call was made");
	ok(fake_find(t->f, "/new") == NULL && fake_find(t->f, "/x")->size == 4,
	   "read-only: nothing was created or truncated");
	do_close(t, h);
	t_free(t);
}

static void test_filter(void)
{
	struct sftp_server_cfg cfg = { 0 };
	const char *bad = NULL;
	is_int(sftp_server_filter(&cfg, "remove,hardlink@openssh.com,statvfs", false, &bad), 0,
	       "-P accepts short and full extension names");
	struct t *t = t_new(&cfg);
	fake_add(t->f, "/x", F_FILE, 0644);
	do_path(t, SSH_FXP_REMOVE, "/x");
	expect_status(t, SSH_FX_PERMISSION_DENIED, "denied REMOVE");
	ok(fake_find(t->f, "/x") != NULL, "denied REMOVE did not remove");
	do_path(t, SSH_FXP_STAT, "/x");
	is_int(t->type, SSH_FXP_ATTRS, "STAT is still allowed");
	struct buf *b = rq(t, SSH_FXP_INIT);
	buf_u32(b, 3);
	send_rq(t);
	ok(!memmem(t->body, t->blen, "hardlink@", 9) &&
		   !memmem(t->body, t->blen, "\0\0\0\x13statvfs@", 12) &&
		   memmem(t->body, t->blen, "fstatvfs@", 9),
	   "denied extensions are not advertised");
	b = rq_ext(t, "statvfs@openssh.com");
	buf_cstr(b, "/");
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "denied statvfs");
	t_free(t);

	cfg = (struct sftp_server_cfg){ 0 };
	is_int(sftp_server_filter(&cfg, "open,close,read,stat,realpath", true, &bad), 0,
	       "-p list parsed");
	t = t_new(&cfg);
	b = rq(t, SSH_FXP_MKDIR);
	buf_cstr(b, "/m");
	buf_u32(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "MKDIR outside the -p list");
	do_path(t, SSH_FXP_REALPATH, ".");
	is_int(t->type, SSH_FXP_NAME, "REALPATH inside the -p list");
	b = rq_ext(t, "limits@openssh.com");
	send_rq(t);
	expect_status(t, SSH_FX_PERMISSION_DENIED, "limits outside the -p list");
	t_free(t);

	cfg = (struct sftp_server_cfg){ 0 };
	is_int(sftp_server_filter(&cfg, "open,bogus", false, &bad), -EINVAL, "unknown name refused");
	is_str(bad, "bogus", "the unknown name is pointed at");
	is_str(sftp_server_request_name(0), "open", "first -Q name");
	size_t n = 0;
	while (sftp_server_request_name(n))
		n++;
	is_int(n, 30, "-Q lists 18 requests and 12 extensions");
	is_str(sftp_server_request_name(29), "lock", "last -Q name");
}

static void test_malformed(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	fake_add(t->f, "/x", F_FILE, 0644);

	/* No type at all, or a type without an id: nothing to answer. */
	send_raw(t, "", 0);
	is_int(t->nreplies, 0, "empty packet: no reply");
	send_raw(t, "\x11\x00\x00", 3);
	is_int(t->nreplies, 0, "packet too short for an id: no reply");

	struct buf *b = rq(t, SSH_FXP_OPEN);
	buf_cstr(b, "/x");
	send_rq(t); /* pflags and attrs missing */
	expect_status(t, SSH_FX_BAD_MESSAGE, "truncated OPEN");
	b = rq(t, SSH_FXP_STAT);
	buf_cstr(b, "/x");
	buf_u8(b, 0);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "STAT with a trailing byte");
	b = rq(t, SSH_FXP_STAT);
	buf_u32(b, 1000);
	buf_cstr(b, "short");
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "string length past the end");
	b = rq(t, SSH_FXP_STAT);
	buf_str(b, "/x\0y", 4);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "path with a NUL byte");
	b = rq(t, SSH_FXP_SETSTAT);
	buf_cstr(b, "/x");
	buf_u32(b, SSH_FILEXFER_ATTR_EXTENDED);
	buf_u32(b, 0x40000000);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "attrs with a huge extended count");
	b = rq(t, 99);
	send_rq(t);
	expect_status(t, SSH_FX_OP_UNSUPPORTED, "unknown request type");
	b = rq(t, SSH_FXP_STATUS);
	send_rq(t);
	expect_status(t, SSH_FX_OP_UNSUPPORTED, "a reply type sent as a request");
	b = rq_ext(t, "nonesuch@example.com");
	send_rq(t);
	expect_status(t, SSH_FX_OP_UNSUPPORTED, "unknown extension");
	b = rq(t, SSH_FXP_EXTENDED);
	buf_u32(b, 50);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "extension name past the end");
	b = rq_ext(t, "users-groups-by-id@openssh.com");
	buf_str(b, "\0\0\0", 3);
	buf_str(b, "", 0);
	send_rq(t);
	expect_status(t, SSH_FX_BAD_MESSAGE, "users-groups-by-id with a 3-byte id list");

	/* After all that, ordinary service. */
	do_path(t, SSH_FXP_STAT, "/x");
	ok(t->type == SSH_FXP_ATTRS && t->rid == t->id, "the server keeps serving");

	/* Every prefix of a valid WRITE is malformed, never a crash. */
	uint8_t hb[8];
	struct sv h = do_open(t, "/x", SSH_FXF_WRITE, hb);
	b = rq(t, SSH_FXP_WRITE);
	buf_sv(b, h);
	sftp_buf_u64(b, 0);
	buf_str(b, "abcdef", 6);
	size_t full = buf_used(b);
	uint8_t copy[64];
	memcpy(copy, buf_data(b), full);
	bool all_bad = true;
	for (size_t n = 5; n < full; n++) {
		send_raw(t, copy, n);
		if (status_code(t, NULL, 0) != SSH_FX_BAD_MESSAGE)
			all_bad = false;
	}
	ok(all_bad, "every truncation of a WRITE gets BAD_MESSAGE");
	do_close(t, h);
	t_free(t);
}

static void test_paths(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	struct rd r;
	do_path(t, SSH_FXP_REALPATH, "");
	rd_init(&r, t->body, t->blen);
	uint32_t cnt = rd_u32(&r);
	struct sv name = rd_str(&r), longname = rd_str(&r);
	struct sftp_attrs a;
	sftp_attrs_get(&r, &a);
	ok(t->type == SSH_FXP_NAME && cnt == 1 && sv_eq(name, "/home/u") &&
		   sv_eq(longname, "/home/u") && a.flags == 0 && rd_end(&r),
	   "REALPATH of \"\" is that of \".\": one name, dummy attrs");

	do_path(t, SSH_FXP_STAT, "/nope");
	char msg[128];
	ok(status_code(t, msg, sizeof(msg)) == SSH_FX_NO_SUCH_FILE &&
		   strcmp(msg, "No such file or directory") == 0,
	   "ENOENT: NO_SUCH_FILE with strerror text");
	do_path(t, SSH_FXP_STAT, "/forbidden");
	expect_status(t, SSH_FX_PERMISSION_DENIED, "EACCES: PERMISSION_DENIED");
	is_int(sftp_status_from_errno(EROFS), SSH_FX_PERMISSION_DENIED, "EROFS → PERMISSION_DENIED");
	is_int(sftp_status_from_errno(EPERM), SSH_FX_PERMISSION_DENIED, "EPERM → PERMISSION_DENIED");
	is_int(sftp_status_from_errno(EIO), SSH_FX_FAILURE, "EIO → FAILURE");

	/* OpenSSH's argument order: target first. */
	struct buf *b = rq(t, SSH_FXP_SYMLINK);
	buf_cstr(b, "target-file");
	buf_cstr(b, "/link");
	send_rq(t);
	expect_status(t, SSH_FX_OK, "SYMLINK");
	ok(strcmp(t->f->last_symlink_target, "target-file") == 0 &&
		   strcmp(t->f->last_symlink_path, "/link") == 0,
	   "SYMLINK: targetpath first, then linkpath (OpenSSH order)");
	do_path(t, SSH_FXP_READLINK, "/link");
	rd_init(&r, t->body, t->blen);
	cnt = rd_u32(&r);
	name = rd_str(&r);
	ok(t->type == SSH_FXP_NAME && cnt == 1 && sv_eq(name, "target-file"), "READLINK");

	fake_add(t->f, "/old", F_FILE, 0644);
	fake_add(t->f, "/taken", F_FILE, 0644);
	b = rq(t, SSH_FXP_RENAME);
	buf_cstr(b, "/old");
	buf_cstr(b, "/taken");
	send_rq(t);
	expect_status(t, SSH_FX_FAILURE, "RENAME onto an existing name fails");
	b = rq_ext(t, "posix-rename@openssh.com");
	buf_cstr(b, "/old");
	buf_cstr(b, "/taken");
	send_rq(t);
	expect_status(t, SSH_FX_OK, "posix-rename replaces");

	b = rq_ext(t, "expand-path@openssh.com");
	buf_cstr(b, "~/docs");
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	rd_u32(&r);
	name = rd_str(&r);
	ok(t->type == SSH_FXP_NAME && sv_eq(name, "/home/u/docs"), "expand-path ~/docs");
	b = rq_ext(t, "expand-path@openssh.com");
	buf_cstr(b, "~bob");
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	rd_u32(&r);
	name = rd_str(&r);
	ok(t->type == SSH_FXP_NAME && sv_eq(name, "/home/bob"), "expand-path ~bob");
	b = rq_ext(t, "expand-path@openssh.com");
	buf_cstr(b, "~nobody/x");
	send_rq(t);
	expect_status(t, SSH_FX_NO_SUCH_FILE, "expand-path of an unknown user");
	b = rq_ext(t, "home-directory");
	buf_cstr(b, "");
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	rd_u32(&r);
	name = rd_str(&r);
	ok(t->type == SSH_FXP_NAME && sv_eq(name, "/home/u"), "home-directory of \"\"");

	b = rq_ext(t, "limits@openssh.com");
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	uint64_t l[4];
	for (int i = 0; i < 4; i++)
		l[i] = sftp_rd_u64(&r);
	ok(t->type == SSH_FXP_EXTENDED_REPLY && rd_end(&r) && l[0] == SFTP_MAX_PACKET &&
		   l[1] == SFTP_MAX_DATA && l[2] == SFTP_MAX_DATA &&
		   l[3] == SFTP_DEFAULT_MAX_HANDLES,
	   "limits@openssh.com");

	b = rq_ext(t, "users-groups-by-id@openssh.com");
	buf_str(b, "\0\0\x03\xe8\0\0\0\x07", 8);
	buf_str(b, "\0\0\x03\xe8", 4);
	send_rq(t);
	rd_init(&r, t->body, t->blen);
	struct sv users = rd_str(&r), groups = rd_str(&r);
	bool good = t->type == SSH_FXP_EXTENDED_REPLY && rd_end(&r);
	struct rd ur, gr;
	rd_init(&ur, users.p, users.n);
	rd_init(&gr, groups.p, groups.n);
	struct sv u1 = rd_str(&ur), u2 = rd_str(&ur), g1 = rd_str(&gr);
	ok(good && rd_end(&ur) && rd_end(&gr) && sv_eq(u1, "alice") && sv_eq(u2, "") &&
		   sv_eq(g1, "staff"),
	   "users-groups-by-id: names in order, \"\" for unknown");

	b = rq_ext(t, "statvfs@openssh.com");
	buf_cstr(b, "/");
	send_rq(t);
	ok(t->type == SSH_FXP_EXTENDED_REPLY && t->blen == 88, "statvfs@openssh.com: 11 uint64");
	t_free(t);
}

static void test_readdir(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	fake_add(t->f, "/big", F_DIR, 0755);
	for (int i = 0; i < 250; i++) {
		char p[64];
		snprintf(p, sizeof(p), "/big/file%03d", i);
		struct node *n = fake_add(t->f, p, F_FILE, 0640);
		n->size = (size_t)i;
	}
	do_path(t, SSH_FXP_OPENDIR, "/big");
	uint8_t hb[8];
	memcpy(hb, t->body + 4, 8);
	struct sv h = { hb, 8 };
	uint32_t counts[4] = { 0 };
	bool longname_ok = false;
	for (int k = 0; k < 4; k++) {
		struct buf *b = rq(t, SSH_FXP_READDIR);
		buf_sv(b, h);
		send_rq(t);
		if (t->type != SSH_FXP_NAME) {
			counts[k] = status_code(t, NULL, 0) == SSH_FX_EOF ? 0xeeee : 0xbad;
			continue;
		}
		struct rd r;
		rd_init(&r, t->body, t->blen);
		counts[k] = rd_u32(&r);
		for (uint32_t i = 0; i < counts[k]; i++) {
			struct sv name = rd_str(&r), ln = rd_str(&r);
			struct sftp_attrs a;
			sftp_attrs_get(&r, &a);
			if (k == 0 && i == 5) {
				char want[128];
				snprintf(want, sizeof(want), "-rw-r-----    1 alice    staff           5 %s file005",
					 "Nov 14 22:13");
				char got[128];
				snprintf(got, sizeof(got), "%.*s", (int)ln.n, (const char *)ln.p);
				longname_ok = sv_eq(name, "file005") && strcmp(got, want) == 0;
				if (!longname_ok)
					diag("longname \"%s\", want \"%s\"", got, want);
			}
		}
		if (!rd_end(&r))
			counts[k] = 0xbad;
	}
	ok(counts[0] == 100 && counts[1] == 100 && counts[2] == 50 && counts[3] == 0xeeee,
	   "READDIR of 250: 100, 100, 50, then EOF (%u %u %u %x)", counts[0], counts[1],
	   counts[2], counts[3]);
	ok(longname_ok, "READDIR longname is ls -l style with names");
	do_close(t, h);
	t_free(t);
}

static void test_longname(void)
{
	char out[256];
	struct sftp_attrs a = { .flags = SSH_FILEXFER_ATTR_SIZE | SSH_FILEXFER_ATTR_UIDGID |
					 SSH_FILEXFER_ATTR_PERMISSIONS | SSH_FILEXFER_ATTR_ACMODTIME,
				.size = 1234567, .uid = 42, .gid = 43,
				.perm = S_IFDIR | 01777, .mtime = 1000000000 };
	sftp_longname(out, sizeof(out), "tmp", &a, 12, NULL, NULL, 1700000000);
	is_str(out, "drwxrwxrwt   12 42       43        1234567 Sep  9  2001 tmp",
	       "old directory with sticky bit, numeric ids, year format");
	a.perm = S_IFREG | 06755;
	a.mtime = 1700000000 - 60;
	sftp_longname(out, sizeof(out), "x y", &a, 1, "averylongusername", "g", 1700000000);
	is_str(out, "-rwsr-sr-x    1 averylongusername g         1234567 Nov 14 22:12 x y",
	       "setuid/setgid file, long user name, recent date");
	a.perm = S_IFLNK | 0777;
	a.mtime = 1700000000 + 86400;
	sftp_longname(out, sizeof(out), "l", &a, 1, "u", "g", 1700000000);
	is_str(out, "lrwxrwxrwx    1 u        g         1234567 Nov 15  2023 l",
	       "symlink dated in the future shows the year");
	a.perm = S_IFREG | 04644 | 01000;
	a.perm &= ~0100u;
	sftp_longname(out, sizeof(out), "f", &a, 1, "u", "g", 1700000000);
	ok(strncmp(out, "-rwSr--r-T", 10) == 0, "S and T without execute bits (%s)", out);
}

/* The stream layer: split input, several packets at once, back-pressure,
 * oversize lengths. */
static void test_input(void)
{
	struct sftp_server_cfg cfg = { 0 };
	struct t *t = t_new(&cfg);
	fake_add(t->f, "/x", F_FILE, 0644);
	struct buf in, out;
	buf_init(&in, 1u << 20);
	buf_init(&out, 4u << 20);
	/* Three STATs in a row. */
	uint8_t stream[256];
	size_t sl = 0;
	for (int i = 0; i < 3; i++) {
		struct buf *b = rq(t, SSH_FXP_STAT);
		buf_cstr(b, "/x");
		put_be32(stream + sl, (uint32_t)buf_used(b));
		memcpy(stream + sl + 4, buf_data(b), buf_used(b));
		sl += 4 + buf_used(b);
	}
	/* Byte by byte: replies appear only as packets complete. */
	int rc = 0;
	for (size_t i = 0; i < sl && !rc; i++) {
		buf_put(&in, stream + i, 1);
		rc = sftp_server_input(t->s, &in, &out, 1u << 20);
	}
	ok(rc == 0 && buf_used(&in) == 0, "byte-by-byte input fully consumed");
	struct rd r;
	rd_init(&r, buf_data(&out), buf_used(&out));
	int n = 0;
	while (rd_left(&r)) {
		struct sv p = rd_str(&r);
		if (!r.err && p.n && p.p[0] == SSH_FXP_ATTRS)
			n++;
	}
	is_int(n, 3, "three ATTRS replies");

	/* All at once, but the output is "full" after the first reply. */
	buf_reset(&out);
	buf_put(&in, stream, sl);
	rc = sftp_server_input(t->s, &in, &out, 1);
	ok(rc == 0 && buf_used(&in) == sl / 3 * 2, "stops when the output reaches out_high");
	rc = sftp_server_input(t->s, &in, &out, 1u << 20);
	ok(rc == 0 && buf_used(&in) == 0, "and goes on once there is room");

	/* A zero-length packet is dropped; a huge length ends the stream. */
	buf_reset(&out);
	buf_put(&in, "\0\0\0\0", 4);
	rc = sftp_server_input(t->s, &in, &out, 1u << 20);
	ok(rc == 0 && buf_used(&in) == 0 && buf_used(&out) == 0, "zero-length packet skipped");
	uint8_t huge[8];
	put_be32(huge, SFTP_MAX_PACKET + 1);
	memcpy(huge + 4, "\x11\0\0\0", 4);
	buf_put(&in, huge, sizeof(huge));
	is_int(sftp_server_input(t->s, &in, &out, 1u << 20), -EMSGSIZE,
	       "length over SFTP_MAX_PACKET: -EMSGSIZE");
	buf_reset(&in);
	put_be32(huge, SFTP_MAX_PACKET);
	buf_put(&in, huge, sizeof(huge));
	is_int(sftp_server_input(t->s, &in, &out, 1u << 20), 0,
	       "length of exactly SFTP_MAX_PACKET waits for the rest");
	buf_free(&in);
	buf_free(&out);
	t_free(t);
}

/* ------------------------------------------------ staged (zero-copy) READ */

static int stage_mode; /* 0 stage all, 1 cannot stage (-EINVAL), 2 half then -EIO */

static int fk_read_pipe(void *be, void *vh, uint64_t off, size_t len, int pipefd, size_t *got)
{
	static uint8_t tmp[SFTP_MAX_DATA];
	*got = 0;
	if (stage_mode == 1)
		return -EINVAL;
	size_t n = 0;
	int rc = fk_read(be, vh, off, tmp, len, &n);
	if (rc)
		return rc;
	if (stage_mode == 2)
		n /= 2;
	if (n && write(pipefd, tmp, n) != (ssize_t)n)
		return -EIO;
	*got = n;
	return stage_mode == 2 ? -EIO : 0;
}

/* The DATA reply header in out: total length field and data length. */
static bool staged_header(struct buf *out, uint32_t id, uint32_t *len, uint32_t *dlen)
{
	struct rd r;
	rd_init(&r, buf_data(out), buf_used(out));
	*len = rd_u32(&r);
	uint8_t type = rd_u8(&r);
	uint32_t rid = rd_u32(&r);
	*dlen = rd_u32(&r);
	return rd_end(&r) && type == SSH_FXP_DATA && rid == id;
}

static void test_staged_read(void)
{
	int p[2];
	if (pipe(p) < 0) {
		ok(0, "pipe: %s", strerror(errno));
		return;
	}
	static struct sftp_backend_ops staged_ops;
	staged_ops = fake_ops;
	staged_ops.read_pipe = fk_read_pipe;
	struct sftp_server_cfg cfg = { .stage_fd = p[1] };
	struct t *t = t_new(&cfg);
	sftp_server_free(t->s);
	t->s = sftp_server_new(&staged_ops, t->f, &cfg);
	uint8_t hb[8];
	struct sv h = do_open(t, "/s", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT, hb);
	do_write(t, h, 0, "0123456789", 10);
	expect_status(t, SSH_FX_OK, "WRITE before staged reads");

	uint32_t len, dlen;
	uint8_t got[64];
	stage_mode = 0;
	do_read(t, h, 2, 100);
	ok(staged_header(&t->out, t->id, &len, &dlen) && dlen == 8 && len == 1 + 4 + 4 + 8,
	   "staged READ: out has the header only, lengths count the staged bytes");
	is_int(sftp_server_staged(t->s), 8, "staged byte count");
	ok(read(p[0], got, sizeof(got)) == 8 && memcmp(got, "23456789", 8) == 0,
	   "the data is in the staging pipe");
	sftp_server_staged_done(t->s);
	is_int(sftp_server_staged(t->s), 0, "staged_done clears it");

	do_read(t, h, 10, 100);
	expect_status(t, SSH_FX_EOF, "staged READ at end of file");
	ok(!sftp_server_staged(t->s), "EOF stages nothing");

	stage_mode = 1;
	do_read(t, h, 0, 4);
	struct rd r;
	rd_init(&r, t->body, t->blen);
	struct sv d = rd_str(&r);
	ok(t->type == SSH_FXP_DATA && rd_end(&r), "file that cannot be staged: ordinary DATA");
	is_mem(d.p, d.n, "0123", 4, "with the bytes inline");
	ok(!sftp_server_staged(t->s), "and nothing staged");

	stage_mode = 2;
	do_read(t, h, 0, 10);
	ok(staged_header(&t->out, t->id, &len, &dlen) && dlen == 5,
	   "error after some bytes: a short staged read");
	ok(read(p[0], got, sizeof(got)) == 5 && memcmp(got, "01234", 5) == 0, "of those bytes");
	sftp_server_staged_done(t->s);

	/* sftp_server_input stops behind a staged reply until it is emitted. */
	stage_mode = 0;
	struct buf in, out;
	buf_init(&in, 1u << 20);
	buf_init(&out, 1u << 20);
	for (int i = 0; i < 2; i++) {
		struct buf *b = rq(t, SSH_FXP_READ);
		buf_sv(b, h);
		sftp_buf_u64(b, 0);
		buf_u32(b, 3);
		buf_u32(&in, (uint32_t)buf_used(b));
		buf_put(&in, buf_data(b), buf_used(b));
	}
	size_t one = buf_used(&in) / 2;
	ok(sftp_server_input(t->s, &in, &out, 1u << 20) == 0 && buf_used(&in) == one,
	   "input stops after a staged reply");
	sftp_server_staged_done(t->s);
	ok(sftp_server_input(t->s, &in, &out, 1u << 20) == 0 && buf_used(&in) == 0,
	   "and goes on once it is emitted");
	ok(read(p[0], got, sizeof(got)) == 6 && memcmp(got, "012012", 6) == 0,
	   "both payloads staged in order");
	sftp_server_staged_done(t->s);
	buf_free(&in);
	buf_free(&out);
	do_close(t, h);
	t_free(t);
	close(p[0]);
	close(p[1]);
}

/* ------------------------------------------------ direct (spliced) WRITE */

static int wpipe_mode; /* 0 take all, 1 cannot splice (-EINVAL), 2 half then -ENOSPC */

static int fk_write_pipe(void *be, void *vh, uint64_t off, int pipefd, size_t len, size_t *got)
{
	static uint8_t tmp[300 * 1024];
	*got = 0;
	if (wpipe_mode == 1)
		return -EINVAL;
	if (len > sizeof(tmp))
		len = sizeof(tmp);
	ssize_t n = read(pipefd, tmp, wpipe_mode == 2 ? 40000 : len);
	if (n < 0)
		return -errno;
	int rc = n ? fk_write(be, vh, off, tmp, (size_t)n) : 0;
	if (rc)
		return rc;
	*got = (size_t)n;
	return wpipe_mode == 2 ? -ENOSPC : 0;
}

/* A WRITE of @n bytes of @p at @off as it appears in the stream. */
static void put_write(struct t *t, struct buf *dst, struct sv h, uint64_t off, const uint8_t *p,
		      size_t n)
{
	struct buf *b = rq(t, SSH_FXP_WRITE);
	buf_sv(b, h);
	sftp_buf_u64(b, off);
	buf_str(b, p, n);
	buf_u32(dst, (uint32_t)buf_used(b));
	buf_put(dst, buf_data(b), buf_used(b));
}

/* The only reply in @out: a STATUS for @id with @code and @msg. */
static void out_status(struct buf *out, uint32_t id, uint32_t code, const char *msg,
		       const char *what)
{
	struct rd r;
	rd_init(&r, buf_data(out), buf_used(out));
	struct sv pk = rd_str(&r);
	bool one = rd_end(&r);
	rd_init(&r, pk.p, pk.n);
	uint8_t type = rd_u8(&r);
	uint32_t rid = rd_u32(&r), c = rd_u32(&r);
	struct sv m = rd_str(&r);
	rd_str(&r);
	ok(one && rd_end(&r) && type == SSH_FXP_STATUS && rid == id && c == code &&
		   m.n == strlen(msg) && memcmp(m.p, msg, m.n) == 0,
	   "%s: status %s \"%s\" (got %u \"%.*s\")", what, sftp_status_name(code), msg, c,
	   (int)m.n, (const char *)m.p);
	buf_reset(out);
}

/*
 * One big WRITE: header plus @pre payload bytes in @in, then @mid bytes by
 * direct_pipe, the rest read into @in (as a caller does when direct_pipe
 * says 0).  Returns the direct_pipe results through @moved.
 */
static void direct_one(struct t *t, int p[2], struct buf *in, struct buf *out, struct sv h,
		       uint64_t off, const uint8_t *data, size_t n, size_t pre, size_t mid,
		       ssize_t *moved)
{
	struct buf pk;
	buf_init(&pk, 1u << 20);
	put_write(t, &pk, h, off, data, n);
	size_t hdr = buf_used(&pk) - n;
	buf_put(in, buf_data(&pk), hdr + pre);
	ok(sftp_server_input(t->s, in, out, 1u << 20) == 0 && !buf_used(in) && !buf_used(out),
	   "WRITE header taken, no reply yet");
	ok(sftp_server_direct_left(t->s) == n - pre, "payload left in the stream: %zu",
	   sftp_server_direct_left(t->s));
	ok(sftp_server_want(t->s, in, 1u << 30) == n - pre, "want: the rest of the payload");
	ok(write(p[1], data + pre, mid) == (ssize_t)mid, "payload into the pipe");
	*moved = sftp_server_direct_pipe(t->s, p[0], out);
	size_t left = sftp_server_direct_left(t->s);
	buf_put(in, data + n - left, left);
	sftp_server_input(t->s, in, out, 1u << 20);
	uint8_t junk[64 * 1024];
	while (read(p[0], junk, sizeof(junk)) > 0)
		; /* what the pipe still had: the caller would read it next */
	ok(!sftp_server_direct_left(t->s) && !buf_used(in), "payload all consumed");
	buf_free(&pk);
}

static void test_direct_write(void)
{
	int p[2];
	if (pipe2(p, O_NONBLOCK) < 0 || fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0) {
		ok(0, "pipe: %s", strerror(errno));
		return;
	}
	static struct sftp_backend_ops dops;
	dops = fake_ops;
	dops.write_pipe = fk_write_pipe;
	struct sftp_server_cfg cfg = { .direct_in = true };
	struct t *t = t_new(&cfg);
	sftp_server_free(t->s);
	t->s = sftp_server_new(&dops, t->f, &cfg);
	struct buf in, out;
	buf_init(&in, 1u << 20);
	buf_init(&out, 1u << 20);
	size_t n = 200003;
	uint8_t *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	uint8_t hb[8];
	struct sv h = do_open(t, "/d", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT, hb);
	struct node *nd = fake_find(t->f, "/d");
	is_int(sftp_server_want(t->s, &in, 1u << 20), 1u << 20, "no upload yet: big reads");

	/* Spliced in two steps, the pipe empty in between. */
	struct buf pk;
	buf_init(&pk, 1u << 20);
	put_write(t, &pk, h, 5, data, n);
	size_t hdr = buf_used(&pk) - n;
	buf_put(&in, buf_data(&pk), hdr + 1000);
	ok(sftp_server_input(t->s, &in, &out, 1u << 20) == 0 && !buf_used(&in) && !buf_used(&out),
	   "big WRITE: header and first bytes taken, no reply yet");
	is_int(sftp_server_direct_left(t->s), n - 1000, "the rest is left to direct input");
	is_int(sftp_server_direct_pipe(t->s, p[0], &out), -EAGAIN, "empty pipe: -EAGAIN");
	ok(write(p[1], data + 1000, 100000) == 100000, "100000 bytes into the pipe");
	is_int(sftp_server_direct_pipe(t->s, p[0], &out), 100000, "spliced as far as they go");
	ok(!buf_used(&out), "no reply before the last byte");
	ok(write(p[1], data + 101000, n - 101000) == (ssize_t)(n - 101000), "the rest");
	is_int(sftp_server_direct_pipe(t->s, p[0], &out), n - 101000, "spliced");
	out_status(&out, t->id, SSH_FX_OK, "Success", "direct WRITE done");
	ok(nd && nd->size == 5 + n && memcmp(nd->data + 5, data, n) == 0,
	   "file holds the payload at its offset");

	/* Uploading: header-exact reads. */
	is_int(sftp_server_want(t->s, &in, 1u << 20), 13, "exact: up to the handle length");
	buf_put(&in, buf_data(&pk), 13);
	is_int(sftp_server_want(t->s, &in, 1u << 20), hdr - 13, "then to the payload");
	buf_reset(&in);
	buf_reset(&pk);

	/* A file that takes no splice: the payload comes through @in. */
	ssize_t moved;
	wpipe_mode = 1;
	memset(nd->data, 0, nd->size);
	direct_one(t, p, &in, &out, h, 0, data, n, 0, 70000, &moved);
	is_int(moved, 0, "no splice: direct_pipe says read");
	out_status(&out, t->id, SSH_FX_OK, "Success", "copied WRITE");
	ok(memcmp(nd->data, data, n) == 0, "file right");

	/* An error after some bytes: the rest is dropped, the error reported. */
	wpipe_mode = 2;
	direct_one(t, p, &in, &out, h, 0, data, n, 500, 80000, &moved);
	is_int(moved, 40000, "half went in");
	out_status(&out, t->id, SSH_FX_FAILURE, strerror(ENOSPC), "ENOSPC mid-payload");
	wpipe_mode = 0;

	/* Refused WRITEs: nothing reaches the backend, the stream stays in sync. */
	int calls = t->f->calls;
	uint8_t bad[8] = { 0, 0, 0, 9, 0, 0, 0, 1 };
	direct_one(t, p, &in, &out, (struct sv){ bad, 8 }, 0, data, n, 10, 0, &moved);
	is_int(moved, 0, "invalid handle: direct_pipe says read (and drop)");
	out_status(&out, t->id, SSH_FX_FAILURE, "invalid handle", "bad handle");
	is_int(t->f->calls, calls, "no backend call for it");

	/* Malformed (data length short of the packet): parsed whole, as ever. */
	put_write(t, &pk, h, 0, data, n);
	put_be32(buf_data(&pk) + hdr - 4, (uint32_t)n - 1);
	buf_put(&in, buf_data(&pk), hdr + 10);
	sftp_server_input(t->s, &in, &out, 1u << 20);
	ok(!sftp_server_direct_left(t->s) && buf_used(&in) == hdr + 10, "malformed: not direct");
	buf_put(&in, buf_data(&pk) + hdr + 10, buf_used(&pk) - hdr - 10);
	sftp_server_input(t->s, &in, &out, 1u << 20);
	out_status(&out, t->id, SSH_FX_BAD_MESSAGE, "malformed write request", "malformed WRITE");
	buf_reset(&pk);

	/* Any other request ends header-exact reading. */
	struct buf *b = rq(t, SSH_FXP_FSTAT);
	buf_sv(b, h);
	buf_u32(&in, (uint32_t)buf_used(b));
	buf_put(&in, buf_data(b), buf_used(b));
	sftp_server_input(t->s, &in, &out, 1u << 20);
	buf_reset(&out);
	is_int(sftp_server_want(t->s, &in, 1u << 20), 1u << 20, "after FSTAT: big reads again");
	do_close(t, h);
	t_free(t);

	/* Read-only and denied sessions refuse with today's replies. */
	for (int k = 0; k < 2; k++) {
		struct sftp_server_cfg c2 = { .direct_in = true, .read_only = k == 0 };
		const char *bad_name = NULL;
		if (k == 1)
			sftp_server_filter(&c2, "write", false, &bad_name);
		t = t_new(&c2);
		sftp_server_free(t->s);
		t->s = sftp_server_new(&dops, t->f, &c2);
		fake_add(t->f, "/ro", F_FILE, 0644);
		h = do_open(t, "/ro", SSH_FXF_READ, hb);
		calls = t->f->calls;
		direct_one(t, p, &in, &out, h, 0, data, n, 100, 90000, &moved);
		is_int(moved, 0, "refused: direct_pipe says read (and drop)");
		out_status(&out, t->id, SSH_FX_PERMISSION_DENIED,
			   k ? "request denied by server policy" : "read-only session",
			   k ? "denied WRITE" : "read-only WRITE");
		is_int(t->f->calls, calls, "no backend call for it");
		do_close(t, h);
		t_free(t);
	}
	buf_free(&pk);
	buf_free(&in);
	buf_free(&out);
	free(data);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	/* Longname dates are local time: pin it. */
	setenv("TZ", "UTC", 1);
	tzset();
	log_level = -1; /* the tests provoke warnings on purpose */
	test_init();
	test_file_io();
	test_copy_data();
	test_max_handles();
	test_read_only();
	test_filter();
	test_malformed();
	test_paths();
	test_readdir();
	test_longname();
	test_input();
	test_staged_read();
	test_direct_write();
	return done_testing();
}
