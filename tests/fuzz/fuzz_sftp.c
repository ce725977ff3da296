/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the sftp decoder (lib/sftp_server.c, lib/sftp.c) over the
 * real POSIX backend (agent/sftp-server/posix.c) confined to a temporary
 * directory, fed the way wicket-sftp-server's serve() feeds it.
 *
 * Layout of the scratch area (on /dev/shm when there is one, so fsync and
 * big writes cost nothing), made once per process:
 *
 *   BASE/root      the session's --root, refilled before every input with
 *                  a small tree: a, d/, d/b, l -> a, up -> ../outside/secret,
 *                  abs -> /etc/passwd, d/dl -> ..
 *   BASE/outside/secret   a sentinel outside the root
 *
 * Input layout:
 *   byte 0   options: bit 0 read-only, bit 1 at most 3 handles, bit 2 deny
 *            the request numbered byte 1 % (number of requests, as -P would)
 *   byte 1   input is fed in chunks of (byte 1 + 1) * 8 bytes
 *   rest     the client's byte stream (uint32 length + packet, ...)
 *
 * Oracles besides the sanitizers: every reply is a well-formed sftp packet
 * of a reply type; the output queue never overflows (main.c relies on
 * that); and after every input nothing outside BASE/root has changed (the
 * sentinel's content, mode and link count, and the names in BASE and
 * BASE/outside), i.e. confinement held.  A file size limit (RLIMIT_FSIZE,
 * SIGXFSZ ignored) keeps huge sparse writes and self-copies bounded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "posix.h"
#include "sftp.h"
#include "sftp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define OUT_HIGH (256u * 1024u)
#define READ_CHUNK (1024u * 1024u)
static const char secret[] = "secret\n";

/* How many requests -P could name: the server's table decides. */
static size_t nreqs(void)
{
	size_t n = 0;
	while (sftp_server_request_name(n))
		n++;
	return n;
}

static char base[256], rootdir[300], outside[300];
static int base_fd = -1;

/* Remove everything under dirfd without following symlinks. */
static void rm_contents(int dirfd)
{
	int fd = dup(dirfd);
	if (fd < 0)
		abort();
	DIR *d = fdopendir(fd);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			(void)!fchmodat(dirfd, de->d_name, 0700, 0);
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				rm_contents(sub);
				close(sub);
			}
			unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

static void put_file(int dirfd, const char *name, const char *text, mode_t mode)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		abort();
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	fchmod(fd, mode);
	close(fd);
}

static void fill_root(void)
{
	(void)!fchmodat(base_fd, "root", 0700, 0);
	int r = openat(base_fd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r < 0)
		abort();
	rm_contents(r);
	put_file(r, "a", "hello, fuzz\n", 0644);
	if (mkdirat(r, "d", 0755) < 0)
		abort();
	put_file(r, "d/b", "bee\n", 0600);
	if (symlinkat("a", r, "l") < 0 || symlinkat("../outside/secret", r, "up") < 0 ||
	    symlinkat("/etc/passwd", r, "abs") < 0 || symlinkat("..", r, "d/dl") < 0)
		abort();
	close(r);
}

static int count_names(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Confinement oracle: nothing outside the root may have changed. */
static void check_outside(void)
{
	struct stat st;
	char buf[64];
	int fd = openat(base_fd, "outside/secret", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	bool ok = fd >= 0 && fstat(fd, &st) == 0 && n == (ssize_t)strlen(secret) &&
		  memcmp(buf, secret, (size_t)n) == 0 && (st.st_mode & 07777) == 0600 &&
		  st.st_nlink == 1 && S_ISREG(st.st_mode);
	if (fd >= 0)
		close(fd);
	ok = ok && count_names(base_fd, "outside") == 1 && count_names(AT_FDCWD, base) == 2;
	if (!ok) {
		fprintf(stderr, "fuzz_sftp: something outside the root changed (%s)\n", base);
		abort();
	}
}

static void cleanup(void)
{
	if (base_fd < 0)
		return;
	rm_contents(base_fd);
	close(base_fd);
	rmdir(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Quiet: protocol errors are the point.  WICKET_FUZZ_LOG=3 shows them. */
	log_level = getenv("WICKET_FUZZ_LOG") ? atoi(getenv("WICKET_FUZZ_LOG")) : -1;
	umask(022);
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	snprintf(base, sizeof(base), "%s/wicket-fuzz-sftp.XXXXXX", tmp);
	if (!mkdtemp(base)) {
		perror("fuzz_sftp: mkdtemp");
		abort();
	}
	base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(rootdir, sizeof(rootdir), "%s/root", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	if (base_fd < 0 || mkdir(rootdir, 0700) < 0 || mkdir(outside, 0700) < 0)
		abort();
	put_file(base_fd, "outside/secret", secret, 0600);
	atexit(cleanup);
	/* Bounded files: a 2^60 offset or a growing self-copy fails with EFBIG. */
	struct rlimit rl = { 16u << 20, 16u << 20 };
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Every reply: uint32 length, a reply type, and nothing left over. */
static void check_replies(struct buf *out)
{
	if (!buf_used(out))
		return;
	struct rd r;
	rd_init(&r, buf_data(out), buf_used(out));
	while (rd_left(&r)) {
		uint32_t len = rd_u32(&r);
		struct sv pkt = rd_bytes(&r, len);
		if (r.err || len == 0 || len > SFTP_MAX_PACKET) {
			fprintf(stderr, "fuzz_sftp: malformed reply framing (length %u)\n", len);
			abort();
		}
		switch (pkt.p[0]) {
		case SSH_FXP_VERSION:
		case SSH_FXP_STATUS:
		case SSH_FXP_HANDLE:
		case SSH_FXP_DATA:
		case SSH_FXP_NAME:
		case SSH_FXP_ATTRS:
		case SSH_FXP_EXTENDED_REPLY:
			break;
		default:
			fprintf(stderr, "fuzz_sftp: reply of type %u\n", pkt.p[0]);
			abort();
		}
	}
	buf_reset(out);
}

static bool complete_packet(const struct buf *in)
{
	return buf_used(in) >= 4 && buf_used(in) - 4 >= get_be32(buf_data(in));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool xfsz_ignored;
	if (!xfsz_ignored) {
		/* Again here: libFuzzer installs its handlers after Initialize. */
		signal(SIGXFSZ, SIG_IGN);
		xfsz_ignored = true;
	}
	if (size < 2)
		return 0;
	uint8_t opt = data[0];
	size_t chunk = ((size_t)data[1] + 1) * 8;
	struct sftp_server_cfg cfg = { .read_only = opt & 1, .max_handles = (opt & 2) ? 3 : 0 };
	if (opt & 4)
		cfg.denied = 1ull << (data[1] % nreqs());
	data += 2;
	size -= 2;

	fill_root();
	struct px *px;
	/* opt bit 3: start in d (-d under --root), so relative paths are joined. */
	if (px_new(rootdir, (opt & 8) ? "d" : NULL, &px) < 0) {
		fprintf(stderr, "fuzz_sftp: px_new(%s) failed (openat2 missing?)\n", rootdir);
		abort();
	}
	struct sftp_server *s = sftp_server_new(&px_ops, px, &cfg);
	if (!s)
		abort();
	struct buf in, out;
	buf_init(&in, READ_CHUNK + SFTP_MAX_PACKET + 4);
	buf_init(&out, OUT_HIGH + 2 * SFTP_MAX_PACKET);
	size_t pos = 0;
	for (;;) {
		int rc = sftp_server_input(s, &in, &out, OUT_HIGH);
		if (rc == -ENOBUFS) {
			fprintf(stderr, "fuzz_sftp: reply queue overflow\n");
			abort();
		}
		check_replies(&out);
		if (rc)
			break; /* -EMSGSIZE: the session ends, as in serve() */
		if (pos == size) {
			if (!complete_packet(&in))
				break;
			continue;
		}
		size_t k = size - pos < chunk ? size - pos : chunk;
		buf_put(&in, data + pos, k);
		if (in.err)
			abort();
		pos += k;
	}
	buf_free(&in);
	buf_free(&out);
	sftp_server_free(s);
	px_free(px);
	check_outside();
	return 0;
}
