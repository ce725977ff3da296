/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the SSH wrapper's server side (host-tool/ssh/): version
 * line, binary packet framing, message dispatch, KEXINIT negotiation,
 * KEX_ECDH_INIT, userauth (none, publickey against authorized_keys,
 * keyboard-interactive token, decided by the authority of authority.c as
 * the monitor does in privsep.h), zlib@openssh.com inflation and the
 * connection-layer relay policy, both directions.
 *
 * transport.c keeps its packet reader (rx_packets) and dispatcher static
 * and its only public entry, sshs_run(), owns a poll loop on real fds.  To
 * drive the real reader and dispatcher without sockets the file is
 * compiled into this target (#include below), and the state sshs_run()
 * sets up is set up here the same way.  If transport.c renames
 * rx_packets() or sshs_free(), this target stops compiling: adjust it, or
 * better, give transport.c a socket-free "feed bytes" entry point.
 *
 * Input layout:
 *   byte 0     bit 0: mode.  0 = transport from the start (version line,
 *              KEXINIT, ECDH_INIT, NEWKEYS: everything before keys are in
 *              force); 1 = after a finished key exchange with the "none"
 *              cipher kept (the state a real client reaches through
 *              encryption the fuzzer cannot produce), so SERVICE_REQUEST,
 *              USERAUTH_*, re-KEXINIT and, once authenticated, the relay run
 *              on the fuzzer's plaintext.  The session id is then 00 01 ..
 *              1f, which mkcorpus.py signs for publickey seeds.
 *              bit 1 allow "none" auth, bit 2 a one-time token file, bit 3
 *              authorized_keys (the test keys, see below), bit 4 the guest
 *              cannot be reached, bit 5 zlib@openssh.com negotiated both ways
 *              (mode 1), bit 6 packet log to /dev/null, bit 7 byte 4 below
 *              is present
 *   byte 1     client bytes are fed in chunks of byte 1 + 1
 *   bytes 2-3  length G of the guest's byte stream (mode 1; big endian)
 *   [byte 4]   (bit 7 of byte 0) bits 0-1 host keys: 0 ed25519, 1 all three
 *              types, 2 ecdsa-sha2-nistp256 only, 3 ssh-rsa only; bit 2 (mode
 *              1) keys in force both ways: cipher number bits 3-5 of
 *              cipher_names, MAC number bits 6-7 of mac_names, every key
 *              byte 0x11, IV bytes 0x22, MAC key bytes 0x33 (mkcorpus.py
 *              encrypts seeds the same way), sequence numbers from 3
 *   G bytes    what the guest sends once the relay is open (greeting + packets)
 *   rest       what the SSH client sends
 */
#include "../../host-tool/ssh/transport.c"

#include <stdint.h>

#include "authority.h"
#include "fuzz_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct sshkey *host_key[SSHKEY_NTYPES];
static struct buf host_blob[SSHKEY_NTYPES];
static struct authkeys *authkeys;
static char token_dir[256], token_path[300];
static int null_fd = -1;
static FILE *null_file;
static const char token[] = "fuzz-one-time-token-4711";

static const char authkeys_text[] =
	"restrict,pty,command=\"echo forced\" " FUZZ_KEY_ED25519_TYPE " " FUZZ_KEY_ED25519_B64
	" fuzz-ed25519\n"
	"from=\"192.0.2.0/24,!10.0.0.0/8\",no-port-forwarding " FUZZ_KEY_ECDSA_TYPE
	" " FUZZ_KEY_ECDSA_B64 " fuzz-ecdsa\n"
	"no-pty,no-agent-forwarding,no-X11-forwarding " FUZZ_KEY_RSA_TYPE " " FUZZ_KEY_RSA_B64
	" fuzz-rsa\n";

static void cleanup(void)
{
	unlink(token_path);
	rmdir(token_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Quiet: protocol errors are the point.  WICKET_FUZZ_LOG=3 shows them. */
	log_level = getenv("WICKET_FUZZ_LOG") ? atoi(getenv("WICKET_FUZZ_LOG")) : -1;
	signal(SIGPIPE, SIG_IGN);
	for (int t = 0; t < SSHKEY_NTYPES; t++) {
		host_key[t] = sshkey_generate((enum sshkey_type)t);
		buf_init(&host_blob[t], 4096);
		if (!host_key[t])
			abort();
		sshkey_put_blob(host_key[t], &host_blob[t]);
	}
	authkeys = authkeys_parse("fuzz", sv_from_cstr(authkeys_text));
	if (!authkeys || authkeys_count(authkeys) != 3) {
		fprintf(stderr, "fuzz_ssh: cannot set up keys\n");
		abort();
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(token_dir, sizeof(token_dir), "%s/wicket-fuzz-ssh.XXXXXX",
		 tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(token_dir))
		abort();
	snprintf(token_path, sizeof(token_path), "%s/token", token_dir);
	atexit(cleanup);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	null_file = fopen("/dev/null", "w");
	if (null_fd < 0 || !null_file)
		abort();
	return 0;
}

static int open_guest_ok(void *arg, struct tp *out)
{
	(void)arg;
	/* Nothing is ever written to it here: the harness drains gout itself. */
	*out = (struct tp){ .rfd = null_fd, .wfd = null_fd, .pid = 0 };
	return 0;
}

static int open_guest_fail(void *arg, struct tp *out)
{
	(void)arg;
	(void)out;
	return -1;
}

static void put_token(void)
{
	int fd = open(token_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (write(fd, token, sizeof(token) - 1) != (ssize_t)(sizeof(token) - 1) ||
	    write(fd, "\n", 1) != 1)
		abort();
	close(fd);
}

/* The @n-th name of a comma-separated list (wrapping around). */
static struct sv nth_name(const char *list, unsigned n)
{
	unsigned count = 1;
	for (const char *p = list; *p; p++)
		count += *p == ',';
	n %= count;
	const char *p = list;
	while (n--)
		p = strchr(p, ',') + 1;
	return (struct sv){ (const uint8_t *)p, strcspn(p, ",") };
}

/* Keys in force (byte 4 bit 2): the state after a kex with known keys. */
static void keys_in_force(struct sshs *s, uint8_t ext)
{
	uint8_t key[64], iv[CIPHER_IV_MAX], mk[MAC_KEY_MAX];
	memset(key, 0x11, sizeof(key));
	memset(iv, 0x22, sizeof(iv));
	memset(mk, 0x33, sizeof(mk));
	struct sv cn = nth_name(cipher_names, (ext >> 3) & 7);
	struct sv mn = nth_name(mac_names, ext >> 6);
	const struct cipher_info *ci = cipher_find((const char *)cn.p, cn.n);
	const struct mac_info *mi = cipher_needs_mac(ci) ? mac_find((const char *)mn.p, mn.n) : NULL;
	cipher_free(&s->rx.c);
	cipher_free(&s->tx.c);
	if (cipher_init(&s->rx.c, ci, key, iv, mi, mk, false) < 0 ||
	    cipher_init(&s->tx.c, ci, key, iv, mi, mk, true) < 0)
		abort();
	s->rx.seq = s->tx.seq = 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint8_t opt = data[0];
	size_t chunk = (size_t)data[1] + 1;
	size_t glen = (size_t)data[2] << 8 | data[3];
	data += 4;
	size -= 4;
	uint8_t ext = 0;
	if (opt & 128) {
		if (!size)
			return 0;
		ext = data[0];
		data++;
		size--;
	}
	static const uint8_t key_sets[4] = { 1, 7, 2, 4 }; /* bit per enum sshkey_type */
	uint8_t keys = key_sets[ext & 3];
	if (glen > size)
		glen = size;
	const uint8_t *gdata = data;
	const uint8_t *cdata = data + glen;
	size_t clen = size - glen;
	bool direct = opt & 1;

	if (opt & 4)
		put_token();
	/* The authority in process: the monitor's half of privsep.h. */
	struct ssh_authority auth = {
		.host_keys = { (keys & 1) ? host_key[0] : NULL, (keys & 2) ? host_key[1] : NULL,
			       (keys & 4) ? host_key[2] : NULL },
		.authkeys = (opt & 8) ? authkeys : NULL,
		.token_file = (opt & 4) ? token_path : NULL,
		.peer_addr = "192.0.2.7",
		.allow_none = opt & 2,
		.auth_notify_fd = -1,
		.open_guest = (opt & 16) ? open_guest_fail : open_guest_ok,
	};
	authority_init(&auth);
	struct ssh_server_cfg cfg = {
		.host_blob = {
			(keys & 1) ? (struct sv){ buf_data(&host_blob[0]), buf_used(&host_blob[0]) } : SV_NULL,
			(keys & 2) ? (struct sv){ buf_data(&host_blob[1]), buf_used(&host_blob[1]) } : SV_NULL,
			(keys & 4) ? (struct sv){ buf_data(&host_blob[2]), buf_used(&host_blob[2]) } : SV_NULL,
		},
		.has_authkeys = opt & 8,
		.has_token = opt & 4,
		.allow_none = opt & 2,
		.priv = &authority_ops,
		.priv_ctx = &auth,
		.pktlog = (opt & 64) ? null_file : NULL,
		.peer_addr = "192.0.2.7",
		/* The relay sends ssh-connection@wicket from it before session starts. */
		.conn = { .caddr = "192.0.2.7", .saddr = "192.0.2.1", .cport = 50000, .sport = 22 },
	};
	struct sshs *s = sshs_new(&cfg, -1, -1);
	if (!s)
		abort();
	if (direct) {
		/* As after kex_on_newkeys() of a first exchange that chose "none". */
		s->version_done = true;
		snprintf(s->peer_version, sizeof(s->peer_version), "SSH-2.0-fuzz");
		s->first_kex_done = true;
		s->kex_count = 1;
		s->kex_time = time(NULL);
		for (int i = 0; i < 32; i++)
			s->session_id[i] = auth.session_id[i] = (uint8_t)i;
		s->have_session_id = auth.have_session_id = true;
		s->rx.zlib = s->tx.zlib = opt & 32;
		if (ext & 4)
			keys_in_force(s, ext);
	} else {
		kex_send_init(s);
	}

	size_t cpos = 0, gpos = 0;
	while (!s->closing) {
		bool progress = false;
		if (cpos < clen) {
			size_t k = clen - cpos < chunk ? clen - cpos : chunk;
			buf_put(&s->cin, cdata + cpos, k);
			cpos += k;
			progress = true;
		}
		rx_packets(s);
		if (!s->closing && s->authed && s->guest_open) {
			if (gpos < glen) {
				size_t k = glen - gpos < chunk ? glen - gpos : chunk;
				buf_put(&s->gin, gdata + gpos, k);
				gpos += k;
				progress = true;
			}
			relay_from_guest(s);
		}
		/* The client and the guest read everything we queue. */
		buf_reset(&s->cout);
		buf_reset(&s->gout);
		if (!progress)
			break;
	}
	sshs_free(s);
	free(s);
	return 0;
}
