/* SPDX-License-Identifier: MIT */
#include "target_kinds.h"

#include <stdio.h>
#include <string.h>

const struct target_kind target_kinds[] = {
	{ TK_VM, "vm", "vm/NAME", 0 },
	{ TK_UNIX, "unix", "unix/PATH", TK_PCT_ALL },
	{ TK_VSOCK, "vsock", "vsock/CID[:PORT]", 0 },
	{ TK_SERIAL, "serial", "serial/DEVICE[@BAUD]", TK_PCT_ALL },
	{ TK_PODMAN, "podman", "podman/NAME", TK_CONTAINER },
	{ TK_DOCKER, "docker", "docker/NAME", TK_CONTAINER },
	{ TK_K8S, "k8s", "k8s/[NS/]POD[/CONTAINER]", TK_CONTAINER | TK_PCT_ALL },
	{ TK_PID, "pid", "pid/PID", TK_CONTAINER },
	{ TK_DEMO, "demo", "demo", TK_BARE },
};
const size_t target_kinds_count = sizeof(target_kinds) / sizeof(target_kinds[0]);

const struct target_kind *target_kind_find(const char *target, const char **rest)
{
	for (size_t i = 0; i < target_kinds_count; i++) {
		const struct target_kind *k = &target_kinds[i];
		size_t n = strlen(k->name);
		if (k->flags & TK_BARE) {
			if (strcmp(target, k->name) == 0) {
				*rest = target + n;
				return k;
			}
		} else if (strncmp(target, k->name, n) == 0 && target[n] == '/') {
			*rest = target + n + 1;
			return k;
		}
	}
	return NULL;
}

/* Append @s to @buf (always terminated; truncates when full). */
static void cat(char *buf, size_t len, size_t *at, const char *s)
{
	int n = snprintf(buf + *at, len - *at, "%s", s);
	if (n > 0)
		*at = *at + (size_t)n < len ? *at + (size_t)n : len - 1;
}

const char *target_kinds_syntax(char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	for (size_t i = 0; i < target_kinds_count; i++) {
		cat(buf, len, &at, target_kinds[i].syntax);
		cat(buf, len, &at, ", ");
	}
	cat(buf, len, &at, "or --proxy-command CMD");
	return buf;
}

const char *target_kinds_ssh_hosts(char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	/* KIND/STAR first, then KIND%STAR, then the bare names: one line. */
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < target_kinds_count; i++) {
			const struct target_kind *k = &target_kinds[i];
			if (!!(k->flags & TK_BARE) != (pass == 2))
				continue;
			if (at)
				cat(buf, len, &at, " ");
			cat(buf, len, &at, k->name);
			if (pass < 2)
				cat(buf, len, &at, pass == 0 ? "/*" : "%*");
		}
	return buf;
}

int target_from_ssh_host(const char *host, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s", host) >= len)
		return -1;
	char *pct = strchr(out, '%');
	if (!pct || memchr(out, '/', (size_t)(pct - out)))
		return 0;
	*pct = 0;
	const char *rest;
	char probe[64];
	snprintf(probe, sizeof(probe), "%s/", out);
	const struct target_kind *k = target_kind_find(probe, &rest);
	*pct = '/';
	if (k && (k->flags & TK_PCT_ALL))
		for (char *p = pct; (p = strchr(p, '%'));)
			*p = '/';
	return 0;
}
