/* SPDX-License-Identifier: MIT */
/*
 * zlib@openssh.com: one zlib stream per direction, each packet payload
 * flushed with Z_PARTIAL_FLUSH; switched on only once user authentication
 * has succeeded (OpenSSH's "delayed" compression) and started afresh at
 * every NEWKEYS after that, as OpenSSH's packet.c does.
 */
#include "sshs.h"

#ifdef HAVE_ZLIB
#include <string.h>

int comp_start(struct ssh_dir *d, bool out)
{
	memset(&d->z, 0, sizeof(d->z));
	int r = out ? deflateInit(&d->z, Z_DEFAULT_COMPRESSION) : inflateInit(&d->z);
	if (r != Z_OK)
		return -1;
	d->zinit = true;
	d->zdeflate = out;
	return 0;
}

void comp_end(struct ssh_dir *d)
{
	if (!d->zinit)
		return;
	if (d->zdeflate)
		deflateEnd(&d->z);
	else
		inflateEnd(&d->z);
	d->zinit = false;
}

int comp_deflate(struct ssh_dir *d, const uint8_t *p, size_t n, struct buf *out)
{
	d->z.next_in = (Bytef *)(uintptr_t)p;
	d->z.avail_in = (uInt)n;
	do {
		uint8_t *w = buf_reserve(out, 16384);
		if (!w)
			return -1;
		d->z.next_out = w;
		d->z.avail_out = 16384;
		int r = deflate(&d->z, Z_PARTIAL_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		buf_commit(out, 16384 - d->z.avail_out);
	} while (d->z.avail_in || d->z.avail_out == 0);
	return 0;
}

int comp_inflate(struct ssh_dir *d, const uint8_t *p, size_t n, struct buf *out)
{
	d->z.next_in = (Bytef *)(uintptr_t)p;
	d->z.avail_in = (uInt)n;
	for (;;) {
		uint8_t *w = buf_reserve(out, 16384);
		if (!w)
			return -1; /* decompresses past the payload cap */
		d->z.next_out = w;
		d->z.avail_out = 16384;
		int r = inflate(&d->z, Z_SYNC_FLUSH);
		buf_commit(out, 16384 - d->z.avail_out);
		if (r == Z_BUF_ERROR && d->z.avail_out)
			return 0; /* all input consumed */
		if (r != Z_OK)
			return -1;
		if (!d->z.avail_in && d->z.avail_out)
			return 0;
	}
}
#endif
