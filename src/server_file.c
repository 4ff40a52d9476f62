/*
 * server_file.c: static files from the document root (setting htdocs),
 * for requests no dialect is mounted on.  GET and HEAD only; a directory
 * serves its index.html; ETag and Last-Modified with 304; nothing outside
 * the root, whatever ".." or symbolic links a path holds.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "roomd.h"

#define FILE_MAX_BYTES	(8 << 20)

static const struct {
	const char	*ext;
	const char	*type;
} file_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static void
file_error(struct conn *conn, int status, const char *text)
{
	char	 body[256];
	int	 n;

	n = snprintf(body, sizeof(body), "<!doctype html><title>%d %s</title>"
	    "<h1>%d %s</h1>\n", status, text, status, text);
	server_http_respond(conn, status, "text/html; charset=utf-8", body,
	    (size_t)n, status == 405 ? "Allow: GET, HEAD\r\n" : NULL);
}

static const char *
file_type(const char *path)
{
	const char	*dot = strrchr(path, '.');
	size_t		 i;

	for (i = 0; dot != NULL && i < sizeof(file_types) /
	    sizeof(file_types[0]); i++)
		if (strcmp(dot, file_types[i].ext) == 0)
			return file_types[i].type;
	return "application/octet-stream";
}

/* The real path of the request under root, or NULL if outside or absent. */
static char *
file_resolve(const char *root, const char *path, struct stat *st)
{
	char	 want[PATH_MAX], *real;
	size_t	 rlen = strlen(root);

	if (strstr(path, "/../") != NULL || strcmp(path + strlen(path) -
	    (strlen(path) >= 3 ? 3 : 0), "/..") == 0)
		return NULL;
	if (snprintf(want, sizeof(want), "%s%s", root, path) >=
	    (int)sizeof(want) || (real = realpath(want, NULL)) == NULL)
		return NULL;
	/* Symbolic links may not lead out of the root. */
	if (strncmp(real, root, rlen) != 0 || (real[rlen] != '/' &&
	    real[rlen] != '\0') || stat(real, st) == -1) {
		free(real);
		return NULL;
	}
	return real;
}

void
server_file_serve(struct conn *conn, struct http_req *req)
{
	struct stat	 st;
	char		 root[PATH_MAX], *real = NULL, *index = NULL, *buf;
	char		 etag[64], lastmod[64], extra[256];
	struct tm	 tm;
	ssize_t		 n;
	int		 fd;

	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		file_error(conn, 405, "Method Not Allowed");
		return;
	}
	if (env->conf.htdocs[0] == '\0' || realpath(env->conf.htdocs, root) ==
	    NULL || (real = file_resolve(root, req->path, &st)) == NULL) {
		file_error(conn, 404, "Not Found");
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		if (asprintf(&index, "%s/index.html", real) == -1 ||
		    stat(index, &st) == -1) {
			free(index);
			free(real);
			file_error(conn, 404, "Not Found");
			return;
		}
		free(real);
		real = index;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX_BYTES) {
		free(real);
		file_error(conn, 404, "Not Found");
		return;
	}
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"",
	    (unsigned long long)st.st_size, (unsigned long long)st.st_mtime);
	gmtime_r(&st.st_mtime, &tm);
	strftime(lastmod, sizeof(lastmod), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(extra, sizeof(extra), "ETag: %s\r\nLast-Modified: %s\r\n"
	    "Cache-Control: no-cache\r\n", etag, lastmod);
	if (req->if_none_match != NULL && strcmp(req->if_none_match, etag)
	    == 0) {
		free(real);
		server_http_respond(conn, 304, NULL, NULL, 0, extra);
		return;
	}
	if ((fd = open(real, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		if (fd != -1)
			close(fd);
		free(real);
		file_error(conn, 500, "Internal Server Error");
		return;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size)
		file_error(conn, 500, "Internal Server Error");
	else
		server_http_respond(conn, 200, file_type(real), buf,
		    (size_t)n, extra);
	free(buf);
	free(real);
}
