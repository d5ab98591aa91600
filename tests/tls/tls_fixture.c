/*
 * tls_fixture.c - see tls_fixture.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tls_fixture.h"

int tf_certs(char *buf, size_t len)
{
	const char *d = getenv("FERRY_TLS_CERTS");
	char ca[4200];

	if (!d || !*d)
		return -ENOENT;
	if ((size_t)snprintf(buf, len, "%s", d) >= len)
		return -ENAMETOOLONG;
	snprintf(ca, sizeof(ca), "%s/ca.pem", d);
	if (access(ca, R_OK) != 0)
		return FX_SKIP;
	return 0;
}

const char *tf_cert(const char *name)
{
	static char bufs[8][4300];
	static unsigned i;
	char dir[4096];
	char *b = bufs[i++ % 8];

	if (name[0] == '/')
		return name;
	if (tf_certs(dir, sizeof(dir)) != 0)
		snprintf(dir, sizeof(dir), "/nonexistent");
	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

int tf_short_cert(const char *out, unsigned seconds)
{
	char script[4200], dir[4096], secs[16], cmd[12800];
	const char *root = fx_source_root();
	int r = tf_certs(dir, sizeof(dir));

	if (r != 0)
		return r;
	if (!root)
		return -ENOENT;
	snprintf(script, sizeof(script), "%s/tests/servers/certs.sh", root);
	snprintf(secs, sizeof(secs), "%u", seconds);
	/* Paths come from the build and mkdtemp: no quotes in them. */
	snprintf(cmd, sizeof(cmd), "sh '%s' --short '%s' '%s' %s",
		 script, dir, out, secs);
	r = system(cmd);
	if (r == -1)
		return -errno;
	if (WIFEXITED(r) && WEXITSTATUS(r) == 77)
		return FX_SKIP;
	return WIFEXITED(r) && WEXITSTATUS(r) == 0 ? 0 : -EIO;
}

static int script(char *buf, size_t len)
{
	const char *root = fx_source_root();

	if (!root)
		return -ENOENT;
	if ((size_t)snprintf(buf, len, "%s/tests/tls/tls_server.py", root) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int tf_s_server(struct fx_proc *p, const char *cert, const char *key,
		const char *cwd, const char *const args[])
{
	const char *argv[32];
	char path[4200];
	char c[4300], k[4300];
	unsigned n = 0;
	int r = script(path, sizeof(path));

	if (r < 0)
		return r;
	snprintf(c, sizeof(c), "%s", tf_cert(cert));
	snprintf(k, sizeof(k), "%s", tf_cert(key));
	argv[n++] = "python3";
	argv[n++] = path;
	argv[n++] = "s_server";
	if (cwd) {
		argv[n++] = "--cwd";
		argv[n++] = cwd;
	}
	argv[n++] = "-cert";
	argv[n++] = c;
	argv[n++] = "-key";
	argv[n++] = k;
	for (unsigned i = 0; args && args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return fx_start(p, argv);
}

int tf_peer(struct fx_proc *p, const char *mode)
{
	char path[4200];
	const char *argv[4];
	int r = script(path, sizeof(path));

	if (r < 0)
		return r;
	argv[0] = "python3";
	argv[1] = path;
	argv[2] = mode;
	argv[3] = NULL;
	return fx_start(p, argv);
}

int tf_https(struct fx_proc *p, const char *cert, const char *key)
{
	char path[4200], c[4300], k[4300];
	const char *argv[6];
	int r = script(path, sizeof(path));

	if (r < 0)
		return r;
	snprintf(c, sizeof(c), "%s", tf_cert(cert));
	snprintf(k, sizeof(k), "%s", tf_cert(key));
	argv[0] = "python3";
	argv[1] = path;
	argv[2] = "https";
	argv[3] = c;
	argv[4] = k;
	argv[5] = NULL;
	return fx_start(p, argv);
}
