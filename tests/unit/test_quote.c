/* SPDX-License-Identifier: MIT */
/*
 * host-tool/quote: the joined command line must split back into exactly the
 * original words in a real POSIX shell (/bin/sh).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "quote.h"
#include "tap.h"

/*
 * Run /bin/sh -c @script, capture stdout into @out (NUL-terminated string
 * of up to @outlen-1 bytes, embedded NULs kept), return the exit status
 * (128+N for a signal, -1 on set-up failure).
 */
static int run_sh(const char *script, char *out, size_t outlen, size_t *outn)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(126);
	}
	close(p[1]);
	size_t n = 0;
	for (;;) {
		char tmp[4096];
		ssize_t r = read(p[0], tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t k = (size_t)r;
		if (k > outlen - 1 - n)
			k = outlen - 1 - n;
		memcpy(out + n, tmp, k);
		n += k;
	}
	close(p[0]);
	out[n] = 0;
	*outn = n;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The words joined with a NUL after each, as printf "%s\0" prints them. */
static size_t expect_nul_joined(char *const *argv, int argc, char *out)
{
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]);
		memcpy(out + n, argv[i], l);
		n += l;
		out[n++] = 0;
	}
	return n;
}

static char *quoted_cstr(char *const *argv, int argc)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	quote_argv(&b, argv, argc);
	buf_u8(&b, 0);
	char *s = b.err ? NULL : strdup((const char *)buf_data(&b));
	buf_free(&b);
	return s;
}

static char *const nasty[] = {
	"",
	"plain",
	"two words",
	"  lead and trail  ",
	"it's",
	"'",
	"''",
	"a'b'c",
	"\"double\"",
	"\"",
	"$HOME",
	"${HOME}",
	"$(echo pwned)",
	"`echo pwned`",
	"back\\slash",
	"\\",
	"trailing\\",
	"new\nline",
	"\n",
	"tab\there",
	"*",
	"/*",
	"?",
	"[a-z]",
	"-",
	"-n",
	"-e",
	"--help",
	"~",
	"~root",
	"a=b",
	"#comment",
	";",
	"&&",
	"|",
	"a;b|c&d",
	"(sub)",
	"{x,y}",
	"!",
	"<in",
	">out",
	"%s\\0",
	"caf\xc3\xa9",
	"\x01\x7f\xff",
};
#define NNASTY ((int)(sizeof(nasty) / sizeof(nasty[0])))

static void check_words(char *const *argv, int argc, const char *what)
{
	char *q = quoted_cstr(argv, argc);
	if (!ok(q != NULL, "%s: quote_argv succeeded", what))
		return;
	size_t sl = strlen(q) + 64;
	char *script = malloc(sl);
	snprintf(script, sl, "printf \"%%s\\0\" %s", q);
	char out[65536], want[65536];
	size_t outn = 0;
	int st = run_sh(script, out, sizeof(out), &outn);
	size_t wn = expect_nul_joined(argv, argc, want);
	is_int(st, 0, "%s: shell exit status 0", what);
	if (!is_mem(out, outn, want, wn, "%s: shell reproduces the words exactly", what))
		diag("quoted: %s", q);
	free(script);
	free(q);
}

static void test_each_word(void)
{
	/* Each nasty word alone, so a failure names the word. */
	for (int i = 0; i < NNASTY; i++) {
		char label[64];
		char shown[24];
		size_t k = 0;
		for (const char *s = nasty[i]; *s && k < sizeof(shown) - 1; s++)
			shown[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
		shown[k] = 0;
		snprintf(label, sizeof(label), "word %d [%s]", i, shown);
		check_words(&nasty[i], 1, label);
	}
}

static void test_all_words(void)
{
	check_words(nasty, NNASTY, "all nasty words together");
	char *const empties[] = { "", "", "" };
	check_words(empties, 3, "three empty words");
}

static void test_exact_output(void)
{
	char *const a[] = { "ls", "-l", "/tmp/x.y", "a b", "it's", "" };
	char *q = quoted_cstr(a, 6);
	/* argv[0] is always quoted (reserved words, assignments); the rest only
	 * when they need it. */
	is_str(q, "'ls' -l /tmp/x.y 'a b' 'it'\\''s' ''", "exact quoting of a simple command");
	free(q);
	char *const none[] = { NULL };
	q = quoted_cstr(none, 0);
	is_str(q, "", "no words: empty line");
	free(q);
}

/*
 * In real use the quoted line is the whole remote command, so its first word
 * is in command position.  There the shell treats NAME=value as an
 * assignment and "if"/"for"/... as reserved words: the command line no
 * longer means "run the program named by argv[0]".  A command that does not
 * exist must give 127 (not found), whatever its name looks like.
 */
static void test_command_position(void)
{
	char out[4096];
	size_t outn;
	/* Baseline: the full nasty list as arguments of a real command. */
	char *argv[NNASTY + 2];
	argv[0] = "printf";
	argv[1] = "%s\\0";
	for (int i = 0; i < NNASTY; i++)
		argv[i + 2] = nasty[i];
	char *q = quoted_cstr(argv, NNASTY + 2);
	char big[65536], want[65536];
	int st = run_sh(q, big, sizeof(big), &outn);
	size_t wn = expect_nul_joined(nasty, NNASTY, want);
	is_int(st, 0, "quoted printf command line runs");
	is_mem(big, outn, want, wn, "quoted printf command line reproduces every word");
	free(q);

	char *const notfound[] = { "wicket-no-such-command-xyz", "arg" };
	q = quoted_cstr(notfound, 2);
	is_int(run_sh(q, out, sizeof(out), &outn), 127, "missing command gives 127");
	free(q);

	char *const assign[] = { "WICKET_X=1", "true" };
	q = quoted_cstr(assign, 2);
	st = run_sh(q, out, sizeof(out), &outn);
	is_int(st, 127, "argv[0] 'WICKET_X=1' is run as a command (got assignment + true)");
	diag("quoted: %s", q);
	free(q);

	static char *const reserved[] = { "if", "then", "for", "while", "do", "done",
					  "case", "esac", "fi", "until", "elif", "else" };
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		char *const one[] = { reserved[i], "x" };
		q = quoted_cstr(one, 2);
		st = run_sh(q, out, sizeof(out), &outn);
		is_int(st, 127, "argv[0] '%s' is looked up as a command", reserved[i]);
		free(q);
	}

	/* Reserved words in argument position are harmless. */
	char *const args[] = { "printf", "%s\\0", "if", "then", "A=b" };
	q = quoted_cstr(args, 5);
	st = run_sh(q, out, sizeof(out), &outn);
	is_mem(out, outn, "if\0then\0A=b\0", 12, "reserved words/assignments as arguments");
	free(q);
}

int main(void)
{
	if (access("/bin/sh", X_OK) != 0) {
		skip(1, "/bin/sh not available");
		return done_testing();
	}
	test_exact_output();
	test_each_word();
	test_all_words();
	test_command_position();
	return done_testing();
}
