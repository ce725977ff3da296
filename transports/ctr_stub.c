/* SPDX-License-Identifier: MIT */
/* Container openers not built yet: each says so (replaced one by one). */
#include "ctr.h"

#include <errno.h>
#include <stdio.h>

static int not_yet(const char *label, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: this kind of target is not available in this build", label);
	return -ENOSYS;
}

int ctr_podman_open(const char *name, const struct ctr_opts *o, struct tp *out, char *err,
		    size_t errlen)
{
	(void)name;
	(void)out;
	return not_yet(o->label, err, errlen);
}

int ctr_k8s_open(const char *spec, const struct ctr_opts *o, struct tp *out, char *err,
		 size_t errlen)
{
	(void)spec;
	(void)out;
	return not_yet(o->label, err, errlen);
}
