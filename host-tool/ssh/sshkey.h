/* SPDX-License-Identifier: MIT */
/*
 * SSH keys for the host tool's SSH wrapper, all primitives from libcrypto.
 *
 * Public keys: ssh-ed25519 (RFC 8709), ecdsa-sha2-nistp256 (RFC 5656) and
 * ssh-rsa (RFC 4253 6.6; 2048..16384 bits, stricter than OpenSSH's 1024).
 * Signatures: ssh-ed25519, ecdsa-sha2-nistp256, rsa-sha2-256/512 (RFC 8332);
 * ssh-rsa (SHA-1) signatures are never accepted.
 *
 * The host key is ed25519 in OpenSSH's unencrypted openssh-key-v1 format
 * (PROTOCOL.key), so `ssh-keygen -y -f` reads it and can read ours.
 *
 * Every parser here takes untrusted bytes, never exits and never logs;
 * they are the fuzz entry points (sshkey_from_blob, sshkey_verify,
 * sshkey_parse_private, sshkey_from_openssh_public).
 */
#ifndef WICKET_SSH_SSHKEY_H
#define WICKET_SSH_SSHKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct sshkey; /* opaque: type + EVP_PKEY (+ private half for the host key) */

enum sshkey_type { SSHKEY_ED25519, SSHKEY_ECDSA_P256, SSHKEY_RSA };

/* Big enough for "SHA256:" + 43 base64 characters + NUL. */
#define SSHKEY_FP_LEN 64

/* Parse a public key blob (string "ssh-ed25519" + key, etc.); NULL on error. */
struct sshkey *sshkey_from_blob(struct sv blob);
void sshkey_free(struct sshkey *k);
enum sshkey_type sshkey_type(const struct sshkey *k);
/* Append the public key blob (canonical encoding). */
void sshkey_put_blob(const struct sshkey *k, struct buf *out);
/* SHA256 fingerprint as OpenSSH prints it: "SHA256:base64-without-padding". */
void sshkey_fingerprint(const struct sshkey *k, char *out, size_t outlen);
/*
 * Verify an SSH signature blob (string algo + string sig) over data, where the
 * algorithm must be one allowed for the key: ssh-ed25519; ecdsa-sha2-nistp256;
 * rsa-sha2-256 / rsa-sha2-512 (never ssh-rsa/SHA-1). @algo is the algorithm
 * name from the userauth request, which must match the signature's. 0 ok, -1 bad.
 */
int sshkey_verify(const struct sshkey *k, struct sv algo, struct sv sigblob,
		  const uint8_t *data, size_t len);
/*
 * Host key: load an unencrypted OpenSSH-format ed25519 private key file
 * ("-----BEGIN OPENSSH PRIVATE KEY-----"), or generate one and write it in the
 * same format (mode 0600, O_EXCL, parent dirs created 0700) when the file does
 * not exist and @create is true.  A file readable by group or others is
 * refused, as ssh does.  NULL + message in err on failure.
 */
struct sshkey *sshkey_load_host_key(const char *path, bool create, char *err, size_t errlen);
/*
 * Sign data with the private host key: appends the signature blob
 * (string "ssh-ed25519" + string sig64). 0 ok, -1 (no private ed25519 key,
 * libcrypto failure, or @out overflowed).
 */
int sshkey_sign(const struct sshkey *k, const uint8_t *data, size_t len, struct buf *out);
/*
 * Default host key path: $XDG_STATE_HOME/wicket/host_ed25519_key (when that
 * variable holds an absolute path) or ~/.local/state/wicket/host_ed25519_key.
 * @out is "" when no home directory is known or the path does not fit.
 */
void sshkey_default_host_key_path(char *out, size_t outlen);

/* ---- additions beyond the transport's contract ---- */

/* Key blob type name: "ssh-ed25519", "ecdsa-sha2-nistp256" or "ssh-rsa". */
const char *sshkey_type_name(const struct sshkey *k);
/* Same public key (canonical blobs equal). */
bool sshkey_equal(const struct sshkey *a, const struct sshkey *b);
/* True when @k can sign (a loaded or generated host key). */
bool sshkey_has_private(const struct sshkey *k);
/*
 * Whether @algo is a signature algorithm sshkey_verify() accepts for @k:
 * what userauth checks before answering a publickey query with PK_OK.
 */
bool sshkey_algo_allowed(const struct sshkey *k, struct sv algo);
/* Parse "TYPE" + "BASE64" (the first two fields of a .pub / authorized_keys
 * line); the blob's own type must equal @type.  NULL on error. */
struct sshkey *sshkey_from_openssh_public(struct sv type, struct sv b64);
/* Append "TYPE BASE64" (no comment, no newline), as in a .pub file. */
void sshkey_put_openssh_public(const struct sshkey *k, struct buf *out);
/* A fresh ed25519 key pair; NULL when libcrypto fails. */
struct sshkey *sshkey_generate_ed25519(void);
/*
 * Parse the text of an unencrypted openssh-key-v1 ed25519 private key file
 * held in memory.  NULL + message in err on failure.
 */
struct sshkey *sshkey_parse_private(struct sv text, char *err, size_t errlen);
/*
 * Append @k (private ed25519) as an armoured openssh-key-v1 file with
 * @comment.  @out must be wiped by the caller (it holds the secret); it is
 * the caller's job to size it so it does not reallocate (see the .c file:
 * SSHKEY_PRIVATE_TEXT_MAX).  0 ok, -1 error.
 */
int sshkey_format_private(const struct sshkey *k, const char *comment, struct buf *out);
#define SSHKEY_PRIVATE_TEXT_MAX 4096

#endif
