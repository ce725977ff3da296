/* SPDX-License-Identifier: MIT */
/*
 * SFTP v3 server core (draft-ietf-secsh-filexfer-02 plus OpenSSH's
 * extensions).  Each request is parsed whole from a sticky-error cursor and
 * must end exactly where its last field ends; anything else is answered with
 * SSH_FX_BAD_MESSAGE and the session goes on.
 */
#include "sftp_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum { H_FREE, H_FILE, H_DIR };

/* A handle on the wire is slot + generation: a closed slot's old handle is
 * refused even after the slot is reused. */
#define HANDLE_LEN 8

struct sftp_handle {
	void *bh;
	char *path; /* for log lines */
	uint64_t nread, nwritten;
	uint32_t gen;
	uint8_t kind;
	bool dir_eof;
};

/*
 * A WRITE whose payload comes straight from the stream (cfg.direct_in):
 * left bytes still to come for h at off.  code/msg: refused when its
 * header came (the payload is dropped); rc: a write failed (the rest is
 * dropped).  The status reply goes out after the last byte.
 */
struct sftp_direct {
	struct sftp_handle *h;
	uint64_t off;
	size_t left;
	uint32_t id;
	uint32_t code;
	const char *msg;
	int rc;
	bool copy; /* the file takes no splice: the bytes come through @in */
};

/* Length, type, id, handle length: enough to know a WRITE's header size. */
#define DIRECT_HDR_MIN 13u
/* Payloads with less than this still in the stream are not worth a splice. */
#define DIRECT_MIN (64u * 1024u)

struct sftp_server {
	const struct sftp_backend_ops *ops;
	void *be;
	struct sftp_server_cfg cfg;
	struct sftp_handle *h;
	unsigned nslots, nopen, hint;
	uint32_t gen;
	size_t staged; /* payload of the last DATA reply, waiting in cfg.stage_fd */
	struct sftp_direct dw;
	bool exact; /* uploading: the caller reads header-exactly */
};

/* One request being served. */
struct rq {
	struct sftp_server *s;
	const struct sftp_req *def;
	struct rd *r;
	struct buf *out;
	uint32_t id;
	char *tmp[2]; /* paths decoded from the request, freed afterwards */
};

struct sftp_req {
	const char *name;	 /* as -Q/-P/-p know it */
	const char *ext;	 /* SSH_FXP_EXTENDED name, or NULL */
	const char *ext_version; /* advertised in SSH_FXP_VERSION */
	uint8_t type;
	bool does_write;	 /* refused in read-only mode */
	int (*fn)(struct rq *q); /* always 0: lets handlers `return send_...()` */
};

/* ------------------------------------------------------------------ replies */

static size_t reply_begin(struct buf *out, uint8_t type, uint32_t id)
{
	size_t start = buf_used(out);
	buf_u32(out, 0); /* length, patched by reply_end */
	buf_u8(out, type);
	buf_u32(out, id);
	return start;
}

static void reply_end(struct buf *out, size_t start)
{
	if (!out->err)
		put_be32(buf_data(out) + start, (uint32_t)(buf_used(out) - start - 4));
}

/* Drop a reply begun at start (nothing after it was committed). */
static void reply_cancel(struct buf *out, size_t start)
{
	if (!out->err)
		out->len = out->off + start;
}

static int send_status(struct rq *q, uint32_t code, const char *msg)
{
	size_t st = reply_begin(q->out, SSH_FXP_STATUS, q->id);
	buf_u32(q->out, code);
	buf_cstr(q->out, msg);
	buf_cstr(q->out, "en");
	reply_end(q->out, st);
	if (code != SSH_FX_OK && code != SSH_FX_EOF)
		log_debug("%s (id %u): %s: %s", q->def ? q->def->name : "request", q->id,
			  sftp_status_name(code), msg);
	return 0;
}

uint32_t sftp_status_from_errno(int e)
{
	switch (e) {
	case 0:
		return SSH_FX_OK;
	case ENOENT:
		return SSH_FX_NO_SUCH_FILE;
	case EACCES:
	case EPERM:
	case EROFS:
		return SSH_FX_PERMISSION_DENIED;
	default:
		return SSH_FX_FAILURE;
	}
}

/* Status for a backend result: 0 → OK, -errno → its code and strerror text. */
static int send_rc(struct rq *q, int rc)
{
	if (rc == 0)
		send_status(q, SSH_FX_OK, "Success");
	else
		send_status(q, sftp_status_from_errno(-rc), strerror(-rc));
	return 0;
}

static int send_bad(struct rq *q)
{
	char msg[96];
	snprintf(msg, sizeof(msg), "malformed %s request", q->def ? q->def->name : "");
	return send_status(q, SSH_FX_BAD_MESSAGE, msg);
}

static int send_attrs(struct rq *q, const struct sftp_attrs *a)
{
	size_t st = reply_begin(q->out, SSH_FXP_ATTRS, q->id);
	sftp_attrs_put(q->out, a);
	reply_end(q->out, st);
	return 0;
}

/* A NAME reply with one entry whose longname is the name (REALPATH & co.). */
static int send_one_name(struct rq *q, const char *name)
{
	static const struct sftp_attrs none;
	size_t st = reply_begin(q->out, SSH_FXP_NAME, q->id);
	buf_u32(q->out, 1);
	buf_cstr(q->out, name);
	buf_cstr(q->out, name);
	sftp_attrs_put(q->out, &none);
	reply_end(q->out, st);
	return 0;
}

static int send_handle(struct rq *q, unsigned slot, uint32_t gen)
{
	uint8_t h[HANDLE_LEN];
	put_be32(h, slot);
	put_be32(h + 4, gen);
	size_t st = reply_begin(q->out, SSH_FXP_HANDLE, q->id);
	buf_str(q->out, h, sizeof(h));
	reply_end(q->out, st);
	return 0;
}

/* ------------------------------------------------------------------ decoding */

/* A path field: a string without NUL bytes (a NUL is a malformed request). */
static const char *get_path(struct rq *q)
{
	struct sv v = rd_str(q->r);
	if (q->r->err)
		return "";
	unsigned i = q->tmp[0] ? 1 : 0;
	char *p = sv_strdup(v);
	if (!p) {
		/* NUL inside, or out of memory: either way unusable. */
		q->r->err = true;
		return "";
	}
	q->tmp[i] = p;
	log_debug("%s (id %u): path \"%s\"", q->def->name, q->id, p);
	return p;
}

/* ------------------------------------------------------------------ handles */

static bool handle_room(struct rq *q)
{
	if (q->s->nopen < q->s->cfg.max_handles)
		return true;
	send_status(q, SSH_FX_FAILURE, "too many open handles");
	return false;
}

static int handle_add(struct sftp_server *s, uint8_t kind, void *bh, const char *path,
		      uint32_t *gen)
{
	unsigned slot = s->nslots;
	for (unsigned i = 0; i < s->nslots; i++) {
		unsigned k = (s->hint + i) % s->nslots;
		if (s->h[k].kind == H_FREE) {
			slot = k;
			break;
		}
	}
	if (slot == s->nslots) {
		unsigned n = s->nslots ? s->nslots * 2 : 16;
		if (n > s->cfg.max_handles)
			n = s->cfg.max_handles;
		struct sftp_handle *nh = realloc(s->h, n * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		memset(nh + s->nslots, 0, (n - s->nslots) * sizeof(*nh));
		s->h = nh;
		s->nslots = n;
	}
	if (++s->gen == 0)
		s->gen = 1;
	s->h[slot] = (struct sftp_handle){ .bh = bh, .kind = kind, .gen = s->gen,
					   .path = strdup(path) };
	s->hint = slot + 1;
	s->nopen++;
	*gen = s->gen;
	return (int)slot;
}

/* The handle a string names, if it is open and of the wanted kind (H_FREE:
 * either kind, for CLOSE). */
static struct sftp_handle *handle_find(struct sftp_server *s, struct sv v, uint8_t kind)
{
	if (v.n != HANDLE_LEN)
		return NULL;
	uint32_t slot = get_be32(v.p), gen = get_be32(v.p + 4);
	if (slot >= s->nslots)
		return NULL;
	struct sftp_handle *h = &s->h[slot];
	if (h->kind == H_FREE || h->gen != gen || (kind != H_FREE && h->kind != kind))
		return NULL;
	return h;
}

static int handle_close(struct sftp_server *s, struct sftp_handle *h)
{
	int rc = h->kind == H_DIR ? s->ops->closedir(s->be, h->bh) : s->ops->close(s->be, h->bh);
	if (h->kind == H_FILE)
		log_info("close \"%s\" bytes read %llu written %llu", h->path ? h->path : "?",
			 (unsigned long long)h->nread, (unsigned long long)h->nwritten);
	free(h->path);
	*h = (struct sftp_handle){ .kind = H_FREE };
	s->nopen--;
	return rc;
}

/* Look up a handle field parsed earlier; replies FAILURE when it is not valid. */
static struct sftp_handle *need_handle(struct rq *q, struct sv v, uint8_t kind)
{
	struct sftp_handle *h = handle_find(q->s, v, kind);
	if (!h)
		send_status(q, SSH_FX_FAILURE, "invalid handle");
	return h;
}

/* A request whose one field is a handle: it, or NULL once answered. */
static struct sftp_handle *only_handle(struct rq *q, uint8_t kind)
{
	struct sv hv = rd_str(q->r);
	if (!rd_end(q->r)) {
		send_bad(q);
		return NULL;
	}
	return need_handle(q, hv, kind);
}

/* ------------------------------------------------------------------ requests */

static int rq_open(struct rq *q)
{
	const char *path = get_path(q);
	uint32_t pflags = rd_u32(q->r);
	struct sftp_attrs a;
	sftp_attrs_get(q->r, &a);
	if (!rd_end(q->r))
		return send_bad(q);
	/* Read-only refuses anything that could create or change a file, even
	 * a zero-length create. */
	if (q->s->cfg.read_only &&
	    (pflags & (SSH_FXF_WRITE | SSH_FXF_APPEND | SSH_FXF_CREAT | SSH_FXF_TRUNC |
		       SSH_FXF_EXCL)))
		return send_status(q, SSH_FX_PERMISSION_DENIED, "read-only session");
	if (!handle_room(q))
		return 0;
	void *bh;
	int rc = q->s->ops->open(q->s->be, path, pflags, &a, &bh);
	log_debug("open \"%s\" flags 0x%x: %s", path, pflags, rc ? strerror(-rc) : "ok");
	if (rc)
		return send_rc(q, rc);
	uint32_t gen;
	int slot = handle_add(q->s, H_FILE, bh, path, &gen);
	if (slot < 0) {
		q->s->ops->close(q->s->be, bh);
		return send_rc(q, slot);
	}
	return send_handle(q, (unsigned)slot, gen);
}

static int rq_close(struct rq *q)
{
	struct sftp_handle *h = only_handle(q, H_FREE);
	if (h)
		send_rc(q, handle_close(q->s, h));
	return 0;
}

/*
 * READ without copying the data: the backend stages it in the pipe, the
 * reply here is the header only, its length fixed by what was staged.
 * Returns 1 when the file has to be read the ordinary way.
 */
static int read_staged(struct rq *q, struct sftp_handle *h, uint64_t off, uint32_t len)
{
	size_t got = 0;
	int rc = q->s->ops->read_pipe(q->s->be, h->bh, off, len, q->s->cfg.stage_fd, &got);
	if (got > len)
		got = len; /* cannot happen: the backend was asked for len */
	if (!got) {
		/* A file the backend cannot stage (no splice for it): copy it. */
		if (rc == -EINVAL || rc == -ENOSYS)
			return 1;
		if (rc)
			return send_rc(q, rc);
		return send_status(q, SSH_FX_EOF, "End of file");
	}
	/* An error after some bytes: a short read; the client asks again. */
	size_t st = reply_begin(q->out, SSH_FXP_DATA, q->id);
	buf_u32(q->out, (uint32_t)got);
	/* The length field covers the payload that follows from the pipe. */
	put_be32(buf_data(q->out) + st, (uint32_t)(buf_used(q->out) - st - 4 + got));
	q->s->staged = got;
	h->nread += got;
	return 0;
}

static int rq_read(struct rq *q)
{
	struct sv hv = rd_str(q->r);
	uint64_t off = sftp_rd_u64(q->r);
	uint32_t len = rd_u32(q->r);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_handle *h = need_handle(q, hv, H_FILE);
	if (!h)
		return 0;
	if (len > SFTP_MAX_DATA)
		len = SFTP_MAX_DATA;
	if (len && q->s->cfg.stage_fd > 0 && q->s->ops->read_pipe && read_staged(q, h, off, len) == 0)
		return 0;
	/* Read straight into the reply: no copy of the data. */
	size_t st = reply_begin(q->out, SSH_FXP_DATA, q->id);
	uint8_t *p = buf_reserve(q->out, 4 + (size_t)len);
	if (!p)
		return 0;
	size_t got = 0;
	int rc = len ? q->s->ops->read(q->s->be, h->bh, off, p + 4, len, &got) : 0;
	if (rc || (got == 0 && len)) {
		reply_cancel(q->out, st);
		if (rc)
			return send_rc(q, rc);
		return send_status(q, SSH_FX_EOF, "End of file");
	}
	if (got > len)
		got = len; /* a backend bug must not leak buffer bytes */
	put_be32(p, (uint32_t)got);
	buf_commit(q->out, 4 + got);
	reply_end(q->out, st);
	h->nread += got;
	return 0;
}

static int rq_write(struct rq *q)
{
	struct sv hv = rd_str(q->r);
	uint64_t off = sftp_rd_u64(q->r);
	struct sv data = rd_str(q->r);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_handle *h = need_handle(q, hv, H_FILE);
	if (!h)
		return 0;
	int rc = data.n ? q->s->ops->write(q->s->be, h->bh, off, data.p, data.n) : 0;
	if (rc == 0)
		h->nwritten += data.n;
	return send_rc(q, rc);
}

static int stat_path(struct rq *q, bool follow)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_attrs a;
	int rc = q->s->ops->stat(q->s->be, path, follow, &a);
	if (rc)
		return send_rc(q, rc);
	return send_attrs(q, &a);
}

static int rq_lstat(struct rq *q)
{
	return stat_path(q, false);
}

static int rq_stat(struct rq *q)
{
	return stat_path(q, true);
}

static int rq_fstat(struct rq *q)
{
	struct sftp_handle *h = only_handle(q, H_FILE);
	if (!h)
		return 0;
	struct sftp_attrs a;
	int rc = q->s->ops->fstat(q->s->be, h->bh, &a);
	if (rc)
		return send_rc(q, rc);
	return send_attrs(q, &a);
}

static int setstat_path(struct rq *q, bool follow)
{
	const char *path = get_path(q);
	struct sftp_attrs a;
	sftp_attrs_get(q->r, &a);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->setstat(q->s->be, path, follow, &a));
}

static int rq_setstat(struct rq *q)
{
	return setstat_path(q, true);
}

static int rq_lsetstat(struct rq *q)
{
	return setstat_path(q, false);
}

static int rq_fsetstat(struct rq *q)
{
	struct sv hv = rd_str(q->r);
	struct sftp_attrs a;
	sftp_attrs_get(q->r, &a);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_handle *h = need_handle(q, hv, H_FILE);
	if (h)
		send_rc(q, q->s->ops->fsetstat(q->s->be, h->bh, &a));
	return 0;
}

static int rq_opendir(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	if (!handle_room(q))
		return 0;
	void *bh;
	int rc = q->s->ops->opendir(q->s->be, path, &bh);
	log_debug("opendir \"%s\": %s", path, rc ? strerror(-rc) : "ok");
	if (rc)
		return send_rc(q, rc);
	uint32_t gen;
	int slot = handle_add(q->s, H_DIR, bh, path, &gen);
	if (slot < 0) {
		q->s->ops->closedir(q->s->be, bh);
		return send_rc(q, slot);
	}
	return send_handle(q, (unsigned)slot, gen);
}

/* Replies stop growing past this; with names capped at SFTP_NAME_MAX one
 * more entry always fits the packet limit. */
#define READDIR_SOFT_BYTES (64u * 1024u)

static int rq_readdir(struct rq *q)
{
	struct sftp_server *s = q->s;
	struct sftp_handle *h = only_handle(q, H_DIR);
	if (!h)
		return 0;
	if (h->dir_eof)
		return send_status(q, SSH_FX_EOF, "End of file");
	size_t st = reply_begin(q->out, SSH_FXP_NAME, q->id);
	size_t count_at = buf_used(q->out);
	buf_u32(q->out, 0);
	uint32_t count = 0;
	int64_t now = s->ops->now(s->be);
	int rc = 0;
	while (count < SFTP_READDIR_BATCH && buf_used(q->out) - st < READDIR_SOFT_BYTES) {
		struct sftp_dirent e;
		rc = s->ops->readdir(s->be, h->bh, &e);
		if (rc <= 0)
			break;
		size_t nlen = strlen(e.name);
		if (nlen > SFTP_NAME_MAX) {
			log_warn("readdir \"%s\": skipping a %zu-byte name", h->path ? h->path : "?", nlen);
			continue;
		}
		char user[64], group[64], longname[SFTP_NAME_MAX + 256];
		bool hu = s->ops->user_name(s->be, e.a.uid, user, sizeof(user));
		bool hg = s->ops->group_name(s->be, e.a.gid, group, sizeof(group));
		sftp_longname(longname, sizeof(longname), e.name, &e.a, e.nlink, hu ? user : NULL,
			      hg ? group : NULL, now);
		buf_str(q->out, e.name, nlen);
		buf_cstr(q->out, longname);
		sftp_attrs_put(q->out, &e.a);
		count++;
	}
	if (rc == 0 && count < SFTP_READDIR_BATCH)
		h->dir_eof = true; /* ran out: the next READDIR says EOF */
	if (count == 0) {
		reply_cancel(q->out, st);
		if (rc < 0)
			return send_rc(q, rc);
		return send_status(q, SSH_FX_EOF, "End of file");
	}
	if (!q->out->err)
		put_be32(buf_data(q->out) + count_at, count);
	reply_end(q->out, st);
	return 0;
}

static int rq_remove(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->remove(q->s->be, path));
}

static int rq_mkdir(struct rq *q)
{
	const char *path = get_path(q);
	struct sftp_attrs a;
	sftp_attrs_get(q->r, &a);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->mkdir(q->s->be, path, &a));
}

static int rq_rmdir(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->rmdir(q->s->be, path));
}

static int realpath_reply(struct rq *q, const char *path)
{
	char *out = NULL;
	int rc = q->s->ops->realpath(q->s->be, path[0] ? path : ".", &out);
	if (rc)
		return send_rc(q, rc);
	send_one_name(q, out);
	free(out);
	return 0;
}

static int rq_realpath(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return realpath_reply(q, path);
}

static int rename_common(struct rq *q, bool posix)
{
	const char *from = get_path(q);
	const char *to = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->rename(q->s->be, from, to, posix));
}

static int rq_rename(struct rq *q)
{
	return rename_common(q, false);
}

static int rq_posix_rename(struct rq *q)
{
	return rename_common(q, true);
}

static int rq_readlink(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	char *out = NULL;
	int rc = q->s->ops->readlink(q->s->be, path, &out);
	if (rc)
		return send_rc(q, rc);
	send_one_name(q, out);
	free(out);
	return 0;
}

static int rq_symlink(struct rq *q)
{
	/* OpenSSH's order, which sftp and psftp send: target first, then the
	 * link (the draft has them the other way round). */
	const char *target = get_path(q);
	const char *linkpath = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->symlink(q->s->be, target, linkpath));
}

static int send_statvfs(struct rq *q, const struct sftp_statvfs *v)
{
	size_t st = reply_begin(q->out, SSH_FXP_EXTENDED_REPLY, q->id);
	const uint64_t f[] = { v->bsize, v->frsize, v->blocks, v->bfree, v->bavail, v->files,
			       v->ffree, v->favail, v->fsid, v->flag, v->namemax };
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		sftp_buf_u64(q->out, f[i]);
	reply_end(q->out, st);
	return 0;
}

static int rq_statvfs(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_statvfs v;
	int rc = q->s->ops->statvfs(q->s->be, path, &v);
	if (rc)
		return send_rc(q, rc);
	return send_statvfs(q, &v);
}

static int rq_fstatvfs(struct rq *q)
{
	struct sftp_handle *h = only_handle(q, H_FILE);
	if (!h)
		return 0;
	struct sftp_statvfs v;
	int rc = q->s->ops->fstatvfs(q->s->be, h->bh, &v);
	if (rc)
		return send_rc(q, rc);
	return send_statvfs(q, &v);
}

static int rq_hardlink(struct rq *q)
{
	const char *from = get_path(q);
	const char *to = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	return send_rc(q, q->s->ops->link(q->s->be, from, to));
}

static int rq_fsync(struct rq *q)
{
	struct sftp_handle *h = only_handle(q, H_FILE);
	if (h)
		send_rc(q, q->s->ops->fsync(q->s->be, h->bh));
	return 0;
}

/*
 * lock@wicket: string handle.  One writer per file among clients that ask
 * (wicket cp --resume appends to a fixed temp name); released on CLOSE or
 * when the session ends, however it ends.
 */
static int rq_lock(struct rq *q)
{
	struct sftp_handle *h = only_handle(q, H_FILE);
	if (!h)
		return 0;
	if (!q->s->ops->lock)
		return send_status(q, SSH_FX_OP_UNSUPPORTED, "locking is not supported here");
	int rc = q->s->ops->lock(q->s->be, h->bh);
	if (rc == -EWOULDBLOCK)
		return send_status(q, SSH_FX_FAILURE, "locked by another client");
	return send_rc(q, rc);
}

static int rq_limits(struct rq *q)
{
	if (!rd_end(q->r))
		return send_bad(q);
	size_t st = reply_begin(q->out, SSH_FXP_EXTENDED_REPLY, q->id);
	sftp_buf_u64(q->out, SFTP_MAX_PACKET);
	sftp_buf_u64(q->out, SFTP_MAX_DATA);
	sftp_buf_u64(q->out, SFTP_MAX_DATA);
	sftp_buf_u64(q->out, q->s->cfg.max_handles);
	reply_end(q->out, st);
	return 0;
}

/* "~", "~/x", "~user", "~user/x" expand to a home directory; anything else
 * is canonicalised as it is. */
static int rq_expand_path(struct rq *q)
{
	const char *path = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	if (path[0] != '~')
		return realpath_reply(q, path);
	const char *rest = strchr(path, '/');
	size_t ulen = rest ? (size_t)(rest - path - 1) : strlen(path + 1);
	char *user = ulen ? strndup(path + 1, ulen) : NULL;
	if (ulen && !user)
		return send_rc(q, -ENOMEM);
	char *home = NULL;
	int rc = q->s->ops->home(q->s->be, user, &home);
	free(user);
	if (rc)
		return send_rc(q, rc);
	char *full = NULL;
	if (rest && rest[1]) {
		size_t hl = strlen(home), rl = strlen(rest);
		full = malloc(hl + rl + 1);
		if (full) {
			memcpy(full, home, hl);
			memcpy(full + hl, rest, rl + 1);
		}
	} else {
		full = strdup(home);
	}
	free(home);
	if (!full)
		return send_rc(q, -ENOMEM);
	realpath_reply(q, full);
	free(full);
	return 0;
}

static int rq_copy_data(struct rq *q)
{
	struct sv from = rd_str(q->r);
	uint64_t from_off = sftp_rd_u64(q->r);
	uint64_t len = sftp_rd_u64(q->r);
	struct sv to = rd_str(q->r);
	uint64_t to_off = sftp_rd_u64(q->r);
	if (!rd_end(q->r))
		return send_bad(q);
	struct sftp_handle *hf = need_handle(q, from, H_FILE);
	if (!hf)
		return 0;
	struct sftp_handle *ht = need_handle(q, to, H_FILE);
	if (!ht)
		return 0;
	if (hf == ht)
		return send_status(q, SSH_FX_FAILURE, "copy-data: source and destination are the same handle");
	return send_rc(q, q->s->ops->copy(q->s->be, hf->bh, from_off, len, ht->bh, to_off));
}

static int rq_home_directory(struct rq *q)
{
	const char *user = get_path(q);
	if (!rd_end(q->r))
		return send_bad(q);
	char *home = NULL;
	int rc = q->s->ops->home(q->s->be, user[0] ? user : NULL, &home);
	if (rc)
		return send_rc(q, rc);
	send_one_name(q, home);
	free(home);
	return 0;
}

/* Bounds the reply: every id costs at most 4 + 63 bytes of names. */
#define IDS_MAX 2048

static void put_names(struct rq *q, struct sv ids, bool group)
{
	struct sftp_server *s = q->s;
	size_t st = buf_used(q->out);
	buf_u32(q->out, 0); /* length of the nested list, patched below */
	for (size_t i = 0; i + 4 <= ids.n; i += 4) {
		uint32_t id = get_be32(ids.p + i);
		char name[64];
		bool ok = group ? s->ops->group_name(s->be, id, name, sizeof(name))
				: s->ops->user_name(s->be, id, name, sizeof(name));
		buf_cstr(q->out, ok ? name : "");
	}
	if (!q->out->err)
		put_be32(buf_data(q->out) + st, (uint32_t)(buf_used(q->out) - st - 4));
}

static int rq_users_groups(struct rq *q)
{
	struct sv uids = rd_str(q->r);
	struct sv gids = rd_str(q->r);
	if (!rd_end(q->r) || uids.n % 4 || gids.n % 4)
		return send_bad(q);
	if ((uids.n + gids.n) / 4 > IDS_MAX)
		return send_status(q, SSH_FX_FAILURE, "too many ids in one request");
	size_t st = reply_begin(q->out, SSH_FXP_EXTENDED_REPLY, q->id);
	put_names(q, uids, false);
	put_names(q, gids, true);
	reply_end(q->out, st);
	return 0;
}

/* The order is -Q's, and the order extensions are advertised in. */
static const struct sftp_req sftp_reqs[] = {
	{ "open", NULL, NULL, SSH_FXP_OPEN, false, rq_open }, /* read-only: checks pflags */
	{ "close", NULL, NULL, SSH_FXP_CLOSE, false, rq_close },
	{ "read", NULL, NULL, SSH_FXP_READ, false, rq_read },
	{ "write", NULL, NULL, SSH_FXP_WRITE, true, rq_write },
	{ "lstat", NULL, NULL, SSH_FXP_LSTAT, false, rq_lstat },
	{ "fstat", NULL, NULL, SSH_FXP_FSTAT, false, rq_fstat },
	{ "setstat", NULL, NULL, SSH_FXP_SETSTAT, true, rq_setstat },
	{ "fsetstat", NULL, NULL, SSH_FXP_FSETSTAT, true, rq_fsetstat },
	{ "opendir", NULL, NULL, SSH_FXP_OPENDIR, false, rq_opendir },
	{ "readdir", NULL, NULL, SSH_FXP_READDIR, false, rq_readdir },
	{ "remove", NULL, NULL, SSH_FXP_REMOVE, true, rq_remove },
	{ "mkdir", NULL, NULL, SSH_FXP_MKDIR, true, rq_mkdir },
	{ "rmdir", NULL, NULL, SSH_FXP_RMDIR, true, rq_rmdir },
	{ "realpath", NULL, NULL, SSH_FXP_REALPATH, false, rq_realpath },
	{ "stat", NULL, NULL, SSH_FXP_STAT, false, rq_stat },
	{ "rename", NULL, NULL, SSH_FXP_RENAME, true, rq_rename },
	{ "readlink", NULL, NULL, SSH_FXP_READLINK, false, rq_readlink },
	{ "symlink", NULL, NULL, SSH_FXP_SYMLINK, true, rq_symlink },
	{ "posix-rename", "posix-rename@openssh.com", "1", SSH_FXP_EXTENDED, true, rq_posix_rename },
	{ "statvfs", "statvfs@openssh.com", "2", SSH_FXP_EXTENDED, false, rq_statvfs },
	{ "fstatvfs", "fstatvfs@openssh.com", "2", SSH_FXP_EXTENDED, false, rq_fstatvfs },
	{ "hardlink", "hardlink@openssh.com", "1", SSH_FXP_EXTENDED, true, rq_hardlink },
	{ "fsync", "fsync@openssh.com", "1", SSH_FXP_EXTENDED, true, rq_fsync },
	{ "lsetstat", "lsetstat@openssh.com", "1", SSH_FXP_EXTENDED, true, rq_lsetstat },
	{ "limits", "limits@openssh.com", "1", SSH_FXP_EXTENDED, false, rq_limits },
	{ "expand-path", "expand-path@openssh.com", "1", SSH_FXP_EXTENDED, false, rq_expand_path },
	{ "copy-data", "copy-data", "1", SSH_FXP_EXTENDED, true, rq_copy_data },
	{ "home-directory", "home-directory", "1", SSH_FXP_EXTENDED, false, rq_home_directory },
	{ "users-groups-by-id", "users-groups-by-id@openssh.com", "1", SSH_FXP_EXTENDED, false,
	  rq_users_groups },
	{ "lock", "lock@wicket", "1", SSH_FXP_EXTENDED, false, rq_lock },
};

#define NREQS (sizeof(sftp_reqs) / sizeof(sftp_reqs[0]))
_Static_assert(NREQS <= 64, "denied is a 64-bit mask");

const char *sftp_server_request_name(size_t i)
{
	return i < NREQS ? sftp_reqs[i].name : NULL;
}

static int req_index(const char *name, size_t len)
{
	for (size_t i = 0; i < NREQS; i++) {
		const struct sftp_req *d = &sftp_reqs[i];
		if ((strlen(d->name) == len && memcmp(d->name, name, len) == 0) ||
		    (d->ext && strlen(d->ext) == len && memcmp(d->ext, name, len) == 0))
			return (int)i;
	}
	return -1;
}

int sftp_server_filter(struct sftp_server_cfg *cfg, const char *list, bool allow,
		       const char **bad)
{
	uint64_t mask = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len) {
			int i = req_index(p, len);
			if (i < 0) {
				if (bad)
					*bad = p;
				return -EINVAL;
			}
			mask |= 1ull << i;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	if (allow)
		cfg->denied |= ~mask & ((NREQS < 64 ? (1ull << NREQS) : 0) - 1);
	else
		cfg->denied |= mask;
	return 0;
}

/* ------------------------------------------------------------------ dispatch */

static void send_version(struct sftp_server *s, struct buf *out)
{
	size_t st = buf_used(out);
	buf_u32(out, 0);
	buf_u8(out, SSH_FXP_VERSION);
	buf_u32(out, SFTP_VERSION);
	for (size_t i = 0; i < NREQS; i++) {
		if (!sftp_reqs[i].ext || (s->cfg.denied & (1ull << i)))
			continue;
		buf_cstr(out, sftp_reqs[i].ext);
		buf_cstr(out, sftp_reqs[i].ext_version);
	}
	reply_end(out, st);
}

static void do_init(struct sftp_server *s, struct rd *r, struct buf *out)
{
	uint32_t version = rd_u32(r);
	/* Extension pairs a client may send; none changes what we do. */
	while (rd_left(r) > 0) {
		rd_str(r);
		rd_str(r);
	}
	if (!rd_end(r))
		log_warn("malformed INIT packet (answering anyway)");
	log_info("client version %u", version);
	send_version(s, out);
}

static const struct sftp_req *req_lookup(uint8_t type, struct sv ext)
{
	for (size_t i = 0; i < NREQS; i++) {
		const struct sftp_req *d = &sftp_reqs[i];
		if (d->type != type)
			continue;
		if (type != SSH_FXP_EXTENDED || (strlen(d->ext) == ext.n &&
						 memcmp(d->ext, ext.p, ext.n) == 0))
			return d;
	}
	return NULL;
}

int sftp_server_packet(struct sftp_server *s, struct sv pkt, struct buf *out)
{
	struct rd r;
	rd_init(&r, pkt.p, pkt.n);
	uint8_t type = rd_u8(&r);
	if (r.err) {
		log_warn("empty packet ignored");
		return 0;
	}
	if (type == SSH_FXP_INIT) {
		do_init(s, &r, out);
		return out->err ? -ENOBUFS : 0;
	}
	struct rq q = { .s = s, .r = &r, .out = out };
	q.id = rd_u32(&r);
	if (r.err) {
		log_warn("packet of type %u too short for a request id: ignored", type);
		return 0;
	}
	struct sv ext = SV_NULL;
	if (type == SSH_FXP_EXTENDED) {
		ext = rd_str(&r);
		if (r.err) {
			send_status(&q, SSH_FX_BAD_MESSAGE, "malformed extended request");
			return out->err ? -ENOBUFS : 0;
		}
	}
	q.def = req_lookup(type, ext);
	if (!q.def) {
		char msg[96], name[48];
		if (type == SSH_FXP_EXTENDED) {
			sv_printable(ext, name, sizeof(name));
			snprintf(msg, sizeof(msg), "unsupported extension \"%s\"", name);
		} else {
			snprintf(msg, sizeof(msg), "unsupported request type %u", type);
		}
		log_info("%s", msg);
		send_status(&q, SSH_FX_OP_UNSUPPORTED, msg);
		return out->err ? -ENOBUFS : 0;
	}
	size_t idx = (size_t)(q.def - sftp_reqs);
	if (s->cfg.denied & (1ull << idx)) {
		log_info("refusing %s request: denied by policy", q.def->name);
		send_status(&q, SSH_FX_PERMISSION_DENIED, "request denied by server policy");
	} else if (s->cfg.read_only && q.def->does_write) {
		log_info("refusing %s request: read-only session", q.def->name);
		send_status(&q, SSH_FX_PERMISSION_DENIED, "read-only session");
	} else {
		q.def->fn(&q);
	}
	free(q.tmp[0]);
	free(q.tmp[1]);
	return out->err ? -ENOBUFS : 0;
}

/* ------------------------------------------------------------ direct input */

static const struct sftp_req *write_def(void)
{
	return req_lookup(SSH_FXP_WRITE, SV_NULL);
}

static void direct_end(struct sftp_server *s, struct buf *out)
{
	struct sftp_direct *d = &s->dw;
	struct rq q = { .s = s, .def = write_def(), .out = out, .id = d->id };
	if (d->code)
		send_status(&q, d->code, d->msg);
	else
		send_rc(&q, d->rc);
	d->h = NULL;
}

/* @n payload bytes of the direct WRITE read the ordinary way. */
static void direct_take(struct sftp_server *s, const uint8_t *p, size_t n, struct buf *out)
{
	struct sftp_direct *d = &s->dw;
	if (n > d->left)
		n = d->left;
	if (n && !d->code && !d->rc) {
		d->rc = s->ops->write(s->be, d->h->bh, d->off, p, n);
		if (!d->rc)
			d->h->nwritten += n;
	}
	d->off += n;
	d->left -= n;
	if (!d->left)
		direct_end(s, out);
}

/*
 * @in holds the start of a packet.  When it is a well-formed WRITE with its
 * header in and at least DIRECT_MIN payload bytes still in the stream,
 * judge it as sftp_server_packet() and rq_write() would, write the payload
 * bytes already read and leave the rest to direct input.  Anything else
 * (malformed lengths included) waits to be parsed whole, as usual.
 */
static bool direct_begin(struct sftp_server *s, struct buf *in, struct buf *out)
{
	size_t u = buf_used(in);
	const uint8_t *p = buf_data(in);
	if (!s->cfg.direct_in || !s->ops->write_pipe || u < DIRECT_HDR_MIN || p[4] != SSH_FXP_WRITE)
		return false;
	size_t whole = 4 + (size_t)get_be32(p);
	size_t hdr = DIRECT_HDR_MIN + (size_t)get_be32(p + 9) + 12; /* + offset, data length */
	if (u < hdr || hdr > whole || whole - u < DIRECT_MIN)
		return false;
	struct rd r;
	rd_init(&r, p + 5, hdr - 5);
	uint32_t id = rd_u32(&r);
	struct sv hv = rd_str(&r);
	uint64_t off = sftp_rd_u64(&r);
	uint32_t dlen = rd_u32(&r);
	if (r.err || hdr + dlen != whole || off > (uint64_t)INT64_MAX - dlen)
		return false;
	const struct sftp_req *def = write_def();
	struct sftp_direct *d = &s->dw;
	*d = (struct sftp_direct){ .off = off, .left = dlen, .id = id };
	if (s->cfg.denied & (1ull << (size_t)(def - sftp_reqs))) {
		log_info("refusing %s request: denied by policy", def->name);
		d->code = SSH_FX_PERMISSION_DENIED;
		d->msg = "request denied by server policy";
	} else if (s->cfg.read_only) {
		log_info("refusing %s request: read-only session", def->name);
		d->code = SSH_FX_PERMISSION_DENIED;
		d->msg = "read-only session";
	} else if (!(d->h = handle_find(s, hv, H_FILE))) {
		d->code = SSH_FX_FAILURE;
		d->msg = "invalid handle";
	}
	s->exact = true;
	direct_take(s, p + hdr, u - hdr, out);
	buf_consume(in, u);
	return true;
}

size_t sftp_server_want(const struct sftp_server *s, const struct buf *in, size_t max)
{
	size_t u = buf_used(in), want = max;
	const uint8_t *p = buf_data(in);
	if (s->dw.left) {
		want = s->dw.left;
	} else if (s->exact && u < DIRECT_HDR_MIN) {
		want = DIRECT_HDR_MIN - u;
	} else if (s->exact) {
		/* Up to a WRITE's payload, else to the packet's end. */
		size_t whole = 4 + (size_t)get_be32(p);
		size_t hdr = DIRECT_HDR_MIN + (size_t)get_be32(p + 9) + 12;
		if (p[4] == SSH_FXP_WRITE && u < hdr && hdr < whole)
			want = hdr - u;
		else if (u < whole)
			want = whole - u;
	}
	return want < max ? want : max;
}

size_t sftp_server_direct_left(const struct sftp_server *s)
{
	return s->dw.left;
}

ssize_t sftp_server_direct_pipe(struct sftp_server *s, int fd, struct buf *out)
{
	struct sftp_direct *d = &s->dw;
	if (!d->left || d->code || d->rc || d->copy)
		return 0;
	size_t got = 0;
	int rc = s->ops->write_pipe(s->be, d->h->bh, d->off, fd, d->left, &got);
	if (got > d->left)
		got = d->left; /* cannot happen: the backend was asked for left */
	d->h->nwritten += got;
	if ((rc == -EINVAL || rc == -ENOSYS) && !got)
		d->copy = true;
	else if (rc && rc != -EAGAIN)
		d->rc = rc; /* the rest is read and dropped */
	d->off += got;
	d->left -= got;
	if (!d->left)
		direct_end(s, out);
	if (got)
		return (ssize_t)got;
	return rc == -EAGAIN && !d->copy ? -EAGAIN : 0;
}

/* ------------------------------------------------------------------ input */

int sftp_server_input(struct sftp_server *s, struct buf *in, struct buf *out, size_t out_high)
{
	if (s->dw.left) {
		size_t k = buf_used(in) < s->dw.left ? buf_used(in) : s->dw.left;
		direct_take(s, buf_data(in), k, out);
		buf_consume(in, k);
	}
	if (out->err)
		return -ENOBUFS;
	while (buf_used(out) < out_high && buf_used(in) >= 4 && !s->staged && !s->dw.left) {
		uint32_t len = get_be32(buf_data(in));
		if (len > SFTP_MAX_PACKET)
			return -EMSGSIZE;
		if (buf_used(in) - 4 < len) {
			direct_begin(s, in, out);
			break;
		}
		if (len && buf_data(in)[4] != SSH_FXP_WRITE)
			s->exact = false; /* not an upload (any more): big reads again */
		else if (len >= DIRECT_MIN)
			s->exact = true; /* an upload read whole: splice the next ones */
		int rc = sftp_server_packet(s, (struct sv){ buf_data(in) + 4, len }, out);
		buf_consume(in, 4 + (size_t)len);
		if (rc)
			return rc;
	}
	return 0;
}

size_t sftp_server_staged(const struct sftp_server *s)
{
	return s->staged;
}

void sftp_server_staged_done(struct sftp_server *s)
{
	s->staged = 0;
}

struct sftp_server *sftp_server_new(const struct sftp_backend_ops *ops, void *be,
				    const struct sftp_server_cfg *cfg)
{
	struct sftp_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ops = ops;
	s->be = be;
	s->cfg = *cfg;
	if (!s->cfg.max_handles)
		s->cfg.max_handles = SFTP_DEFAULT_MAX_HANDLES;
	return s;
}

void sftp_server_free(struct sftp_server *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nslots; i++)
		if (s->h[i].kind != H_FREE)
			handle_close(s, &s->h[i]);
	free(s->h);
	free(s);
}
