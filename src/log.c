/*
 * log.c: logging to standard error in the foreground, to syslog otherwise.
 * Each line names the process ("master" or "worker N").
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "roomd.h"

static int		 log_foreground = 1;
static int		 log_verbose;
static char		 log_proc[32] = "roomd";

void
log_init(int foreground, int verbose)
{
	log_foreground = foreground;
	log_verbose = verbose;
	if (!foreground)
		openlog("roomd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_setproc(const char *name)
{
	snprintf(log_proc, sizeof(log_proc), "%s", name);
}

static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char	 msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_foreground) {
		fprintf(stderr, "roomd[%d] %s: %s%s%s\n", (int)getpid(),
		    log_proc, msg, suffix ? ": " : "", suffix ? suffix : "");
		fflush(stderr);
	} else
		syslog(pri, "%s: %s%s%s", log_proc, msg, suffix ? ": " : "",
		    suffix ? suffix : "");
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_ERR, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

/*
 * A warning at most once every LOG_LIMIT_INTERVAL seconds for this
 * limiter; the next one that gets through says how many were left out.
 */
void
log_limited(struct log_limit *l, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024], more[64] = "";
	time_t	 now = time(NULL);

	if (l->last != 0 && now - l->last < LOG_LIMIT_INTERVAL) {
		l->skipped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->skipped > 0)
		snprintf(more, sizeof(more), " (and %u more like it)",
		    l->skipped);
	log_warnx("%s: %s%s", l->prefix, msg, more);
	l->last = now;
	l->skipped = 0;
}
