/* SPDX-License-Identifier: MIT */
/* Blocking sftp calls: one request, wait for its reply, copy out the result. */
#include "sftp_priv.h"

#include <string.h>

struct call {
	bool done;
	int rc;
	struct sftp_attrs *attrs;
	struct sftp_handle *h;
	char **str;
	sftp_name_fn fn;
	void *fnarg;
	uint64_t lim[4];
	bool want_status_ok; /* op answers only with STATUS */
};

static void call_done(struct sftp *s, const struct sftp_req *q, const struct reply *r)
{
	struct call *c = q->arg;
	c->done = true;
	c->rc = SFTP_OK;
	switch (r->type) {
	case 0:
		c->rc = SFTP_E_INTR;
		break;
	case SSH_FXP_STATUS:
		if (r->status == SSH_FX_OK && !c->want_status_ok) {
			sftp_fatal(s, "sftp server answered request type %u with status OK and no data",
				   q->op);
			c->rc = SFTP_E_FATAL;
			return;
		}
		c->rc = sftp_status_code(r);
		if (r->status != SSH_FX_OK)
			sftp_status_err(s, r);
		break;
	case SSH_FXP_HANDLE:
		c->h->len = (uint32_t)r->handle.n;
		memcpy(c->h->b, r->handle.p, r->handle.n);
		break;
	case SSH_FXP_ATTRS:
		*c->attrs = r->attrs;
		break;
	case SSH_FXP_NAME: {
		struct rd nr;
		rd_init(&nr, r->names.p, r->names.n);
		if (c->str) {
			struct sftp_name nm;
			sftp_name_get(&nr, &nm);
			if (r->count != 1 || !(*c->str = sv_strdup(nm.name))) {
				sftp_fatal(s, "sftp server sent a bad NAME reply to request type %u",
					   q->op);
				c->rc = SFTP_E_FATAL;
			}
			return;
		}
		for (uint32_t i = 0; i < r->count; i++) {
			struct sftp_name nm;
			sftp_name_get(&nr, &nm);
			c->fn(c->fnarg, &nm);
		}
		break;
	}
	case SSH_FXP_EXTENDED_REPLY: {
		struct rd er;
		rd_init(&er, r->ext.p, r->ext.n);
		for (int i = 0; i < 4; i++)
			c->lim[i] = sftp_rd_u64(&er);
		if (er.err) {
			sftp_fatal(s, "malformed limits@openssh.com reply");
			c->rc = SFTP_E_FATAL;
		}
		break;
	}
	}
}

static int call_run(struct sftp *s, struct call *c)
{
	int r = sftp_wait_flag(s, &c->done);
	return r ? r : c->rc;
}

#define CALL_START(s, op, c)                                  \
	struct sftp_req *q = sftp_req_new(s, op, call_done, c);    \
	if (!q)                                               \
		return SFTP_E_FATAL;                          \
	size_t st = sftp_req_begin(s, q)

int sftp_stat(struct sftp *s, const char *path, bool follow, struct sftp_attrs *a)
{
	struct call c = { .attrs = a };
	CALL_START(s, follow ? SSH_FXP_STAT : SSH_FXP_LSTAT, &c);
	buf_cstr(&s->obuf, path);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_open(struct sftp *s, const char *path, uint32_t pflags, const struct sftp_attrs *a,
	      struct sftp_handle *h)
{
	struct call c = { .h = h };
	struct sftp_attrs none = { 0 };
	CALL_START(s, SSH_FXP_OPEN, &c);
	buf_cstr(&s->obuf, path);
	buf_u32(&s->obuf, pflags);
	sftp_attrs_put(&s->obuf, a ? a : &none);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_opendir(struct sftp *s, const char *path, struct sftp_handle *h)
{
	struct call c = { .h = h };
	CALL_START(s, SSH_FXP_OPENDIR, &c);
	buf_cstr(&s->obuf, path);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_close(struct sftp *s, const struct sftp_handle *h)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_CLOSE, &c);
	sftp_put_handle(&s->obuf, h);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_fsetstat(struct sftp *s, const struct sftp_handle *h, const struct sftp_attrs *a)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_FSETSTAT, &c);
	sftp_put_handle(&s->obuf, h);
	sftp_attrs_put(&s->obuf, a);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_lock(struct sftp *s, const struct sftp_handle *h)
{
	if (!s->ext.lock)
		return SSH_FX_OP_UNSUPPORTED; /* nothing asked */
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_EXTENDED, &c);
	buf_cstr(&s->obuf, "lock@wicket");
	sftp_put_handle(&s->obuf, h);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_setstat(struct sftp *s, const char *path, const struct sftp_attrs *a)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_SETSTAT, &c);
	buf_cstr(&s->obuf, path);
	sftp_attrs_put(&s->obuf, a);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_mkdir(struct sftp *s, const char *path, const struct sftp_attrs *a)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_MKDIR, &c);
	buf_cstr(&s->obuf, path);
	sftp_attrs_put(&s->obuf, a);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_remove(struct sftp *s, const char *path)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_REMOVE, &c);
	buf_cstr(&s->obuf, path);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

static int rename_plain(struct sftp *s, const char *from, const char *to)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_RENAME, &c);
	buf_cstr(&s->obuf, from);
	buf_cstr(&s->obuf, to);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

static int rename_posix(struct sftp *s, const char *from, const char *to)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_EXTENDED, &c);
	buf_cstr(&s->obuf, "posix-rename@openssh.com");
	buf_cstr(&s->obuf, from);
	buf_cstr(&s->obuf, to);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_rename(struct sftp *s, const char *from, const char *to)
{
	if (s->ext.posix_rename)
		return rename_posix(s, from, to);
	/* v3 RENAME may refuse an existing target: then remove it and retry. */
	int r = rename_plain(s, from, to);
	if (r <= 0)
		return r;
	struct sftp_attrs a;
	char saved[sizeof(s->err)];
	memcpy(saved, s->err, sizeof(saved));
	if (sftp_stat(s, to, false, &a) != SFTP_OK || (a.flags & SSH_FILEXFER_ATTR_PERMISSIONS &&
						       (a.perm & 0170000) == 0040000)) {
		if (!s->failed)
			memcpy(s->err, saved, sizeof(saved));
		return s->failed ? SFTP_E_FATAL : r;
	}
	int rr = sftp_remove(s, to);
	if (rr != SFTP_OK)
		return rr;
	return rename_plain(s, from, to);
}

int sftp_symlink(struct sftp *s, const char *target, const char *linkpath)
{
	struct call c = { .want_status_ok = true };
	CALL_START(s, SSH_FXP_SYMLINK, &c);
	/*
	 * OpenSSH's order (target first), which differs from the draft; every
	 * server we talk to (OpenSSH, PuTTY, wicket-sftp-server) follows it.
	 */
	buf_cstr(&s->obuf, target);
	buf_cstr(&s->obuf, linkpath);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_readlink(struct sftp *s, const char *path, char **out)
{
	*out = NULL;
	struct call c = { .str = out };
	CALL_START(s, SSH_FXP_READLINK, &c);
	buf_cstr(&s->obuf, path);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_readdir(struct sftp *s, const struct sftp_handle *h, sftp_name_fn fn, void *arg)
{
	struct call c = { .fn = fn, .fnarg = arg };
	CALL_START(s, SSH_FXP_READDIR, &c);
	sftp_put_handle(&s->obuf, h);
	sftp_req_end(s, q, st, 0);
	return call_run(s, &c);
}

int sftp_query_limits(struct sftp *s)
{
	struct call c = { 0 };
	CALL_START(s, SSH_FXP_EXTENDED, &c);
	buf_cstr(&s->obuf, "limits@openssh.com");
	sftp_req_end(s, q, st, 0);
	int r = call_run(s, &c);
	if (r == SFTP_OK) {
		s->ext.max_packet = c.lim[0];
		s->ext.max_read = c.lim[1];
		s->ext.max_write = c.lim[2];
	}
	return r;
}

