/* SPDX-License-Identifier: MIT */
/* Which mux a target belongs to, and where its socket lives (see mux.h). */
#include "mux.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm.h"

/* Readable part of a socket name: at most this many bytes of the target. */
#define MUX_NAME_READABLE 40

int mux_dir_check(const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* Someone else's directory (or a symlink) in /tmp must not be used. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is not a directory owned by uid %u", dir,
			 (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s is accessible to others (mode %03o, want 700)", dir,
			 (unsigned)(st.st_mode & 0777));
		return -1;
	}
	return 0;
}

/*
 * $XDG_RUNTIME_DIR/wicket when $XDG_RUNTIME_DIR is ours (not one inherited
 * across su), else /tmp/wicket-UID.  Either must pass mux_dir_check().
 */
static int runtime_dir(char *out, size_t n, char *err, size_t errlen)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == geteuid())
		snprintf(out, n, "%s/wicket", x);
	else
		snprintf(out, n, "/tmp/wicket-%u", (unsigned)geteuid());
	return mux_dir_check(out, err, errlen);
}

/* FNV-1a, 64 bits: names only need to differ, and the key decides anyway. */
static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* An absolute, normalised path for @p (the file need not exist). */
static void abs_path(const char *p, char *out, size_t n)
{
	char *r = realpath(p, NULL);
	if (r) {
		snprintf(out, n, "%s", r);
		free(r);
		return;
	}
	char cwd[PATH_MAX];
	int w;
	if (p[0] != '/' && getcwd(cwd, sizeof(cwd)))
		w = snprintf(out, n, "%s/%s", cwd, p);
	else
		w = snprintf(out, n, "%s", p);
	if (w < 0 || (size_t)w >= n)
		snprintf(out, n, "%s", p); /* too long to be a socket path anyway */
}

/* The resolved target (the key); 0, or -1 when @target is not shared. */
static int resolve(const char *target, const struct globals *g, struct mux_key *k)
{
	char path[PATH_MAX];
	if (g->tools)
		return -1; /* a toolbox session has an agent of its own */
	if (g->proxy_cmd) {
		snprintf(k->key, sizeof(k->key), "cmd:%s\n%s", target, g->proxy_cmd);
		return 0;
	}
	if (strncmp(target, "vm/", 3) == 0 && target[3]) {
		snprintf(k->key, sizeof(k->key), "vm/%s\n%s", target + 3, vm_uri(g->uri));
		k->libvirt = true;
		return 0;
	}
	if (strncmp(target, "unix/", 5) == 0 && target[5]) {
		abs_path(target + 5, path, sizeof(path));
		snprintf(k->key, sizeof(k->key), "unix/%s", path);
		return 0;
	}
	if (strncmp(target, "vsock/", 6) == 0 && target[6]) {
		snprintf(k->key, sizeof(k->key), "%s", target);
		return 0;
	}
	if (strncmp(target, "serial/", 7) == 0 && target[7]) {
		char dev[PATH_MAX];
		snprintf(dev, sizeof(dev), "%s", target + 7);
		char *at = strrchr(dev, '@');
		if (at)
			*at = 0; /* one line whatever its rate */
		abs_path(dev, path, sizeof(path));
		snprintf(k->key, sizeof(k->key), "serial/%s", path);
		return 0;
	}
	if ((strncmp(target, "podman/", 7) == 0 || strncmp(target, "docker/", 7) == 0) &&
	    target[7]) {
		/* The engine's own notion of where: a different host is a different target. */
		const char *e1 = getenv(target[0] == 'p' ? "CONTAINER_HOST" : "DOCKER_HOST");
		const char *e2 = getenv(target[0] == 'p' ? "CONTAINER_CONNECTION" : "DOCKER_CONTEXT");
		snprintf(k->key, sizeof(k->key), "%s\n%s\n%s", target, e1 ? e1 : "", e2 ? e2 : "");
		return 0;
	}
	if (strncmp(target, "k8s/", 4) == 0 && target[4]) {
		const char *kc = getenv("KUBECONFIG");
		snprintf(k->key, sizeof(k->key), "%s\n%s\n%s", target, kc ? kc : "",
			 g->context ? g->context : "");
		return 0;
	}
	if (strncmp(target, "pid/", 4) == 0 && target[4]) {
		/* A pid is reused: its start time makes the key one process's. */
		char stat[64], line[1024];
		snprintf(stat, sizeof(stat), "/proc/%.20s/stat", target + 4);
		FILE *f = fopen(stat, "re");
		unsigned long long start = 0;
		if (f) {
			if (fgets(line, sizeof(line), f)) {
				char *rp = strrchr(line, ')');
				/* field 22 (starttime) is the 20th after the comm's ')'. */
				for (int field = 0; rp && field < 20; field++)
					rp = strchr(rp + 1, ' ');
				if (rp)
					start = strtoull(rp + 1, NULL, 10);
			}
			fclose(f);
		}
		snprintf(k->key, sizeof(k->key), "%s\n%llu", target, start);
		return 0;
	}
	return -1; /* demo (a fresh sandbox each time), unknown kinds */
}

int mux_key_make(const char *target, const struct globals *g, struct mux_key *k, char *err,
		 size_t errlen)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->label, sizeof(k->label), "%s", target);
	if (resolve(target, g, k) < 0)
		return 0;
	if (runtime_dir(k->dir, sizeof(k->dir), err, errlen) < 0)
		return -1;
	char name[MUX_NAME_READABLE + 1];
	size_t j = 0;
	for (const char *s = g->proxy_cmd ? "cmd" : target; *s && j < MUX_NAME_READABLE; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (j && name[j - 1] == '-' && !ok)
			continue;
		name[j++] = ok ? c : '-';
	}
	name[j] = 0;
	uint64_t h = fnv64(k->key);
	char base[PATH_MAX + 128];
	snprintf(base, sizeof(base), "%s/%s-%016llx", k->dir, name, (unsigned long long)h);
	if (strlen(base) + 5 >= sizeof(k->sock)) {
		/* Would overflow sun_path: the hash alone. */
		snprintf(base, sizeof(base), "%s/m-%016llx", k->dir, (unsigned long long)h);
		if (strlen(base) + 5 >= sizeof(k->sock)) {
			snprintf(err, errlen, "mux directory %s is too long for a socket path",
				 k->dir);
			return -1;
		}
	}
	snprintf(k->sock, sizeof(k->sock), "%s.sock", base);
	snprintf(k->lock, sizeof(k->lock), "%s.lock", base);
	snprintf(k->log, sizeof(k->log), "%s.log", base);
	return 1;
}
