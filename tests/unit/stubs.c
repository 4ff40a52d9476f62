/*
 * stubs.c: stand-ins for the parts of the daemon that src/util.c and
 * src/config.c call but that live elsewhere, so the unit suites can link
 * those two files on their own:
 *
 *   log.c             log_warn, log_warnx, log_info, log_debug, fatal and
 *                     fatalx: messages go to stderr (debug ones only with
 *                     ROOMD_TEST_DEBUG set); fatal and fatalx abort
 *   dialect.c         dialect_find and dialect_find_id over a table that
 *                     holds only the canvas dialect
 *   dialect_canvas.c  dialect_canvas: its name, id and default mount, with
 *                     no handlers (nothing here serves requests)
 *
 * util.c and config.c do not use the process environment (roomd.c's env),
 * so it is not defined here.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd.h"

const struct dialect dialect_canvas = {
	.name = "canvas",
	.id = 1,
	.default_mount = "/canvas",
};

const struct dialect *
dialect_find(const char *name)
{
	if (name != NULL && strcmp(name, dialect_canvas.name) == 0)
		return &dialect_canvas;
	return NULL;
}

const struct dialect *
dialect_find_id(unsigned id)
{
	if (id == dialect_canvas.id)
		return &dialect_canvas;
	return NULL;
}

static void
stub_vlog(const char *level, const char *fmt, va_list ap)
{
	fprintf(stderr, "stubs: %s: ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	stub_vlog("warn", fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	stub_vlog("warnx", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	stub_vlog("info", fmt, ap);
	va_end(ap);
}

/* Debug lines only with ROOMD_TEST_DEBUG set: the wire suites make
 * thousands (each input runs in every chunking). */
void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (getenv("ROOMD_TEST_DEBUG") == NULL)
		return;
	va_start(ap, fmt);
	stub_vlog("debug", fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	stub_vlog("fatal", fmt, ap);
	va_end(ap);
	abort();
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	stub_vlog("fatalx", fmt, ap);
	va_end(ap);
	abort();
}

const struct dialect *
dialect_at(size_t i)
{
	return i == 0 ? &dialect_canvas : NULL;
}
