/* SPDX-License-Identifier: MIT */
#include "quote.h"

#include <string.h>

static int quote_safe(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_-./=:,+@%", c)))
			return 0;
	}
	return 1;
}

void quote_argv(struct buf *out, char *const *argv, int argc)
{
	for (int i = 0; i < argc; i++) {
		if (i)
			buf_u8(out, ' ');
		const char *a = argv[i];
		/* The first word is always quoted: bare, it could be a reserved
		 * word (if, for) or an assignment (A=1) to the remote shell. */
		if (i > 0 && quote_safe(a)) {
			buf_put(out, a, strlen(a));
			continue;
		}
		/* Single quotes keep everything literal; ' itself becomes '\'' */
		buf_u8(out, '\'');
		for (; *a; a++) {
			if (*a == '\'')
				buf_put(out, "'\\''", 4);
			else
				buf_u8(out, (uint8_t)*a);
		}
		buf_u8(out, '\'');
	}
}
