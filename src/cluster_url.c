/*
 * cluster_url.c: the forms of roomd.conf's cluster line, checked by the
 * configuration and taken apart by cluster.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd.h"

/*
 * Where to connect: the address of redis://[:PASSWORD@]HOST:PORT, or the
 * primary that the first answering sentinel of
 * sentinel://HOST:PORT[,HOST:PORT...]/NAME names.  0 or -1.
 */
int
cluster_split(const char *hp, char *host, size_t hostlen, int *port)
{
	const char	*colon = strrchr(hp, ':');
	char		*end;
	long		 p;

	if (colon == NULL || (size_t)(colon - hp) >= hostlen || colon == hp)
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || (*end != '\0' && *end != ',' && *end != '/') ||
	    p < 1 || p > 65535)
		return -1;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = '\0';
	*port = (int)p;
	return 0;
}

int
cluster_parse(const char *key, const char *url, char *err, size_t errlen)
{
	char		 host[128], buf[512];
	const char	*p, *slash;
	int		 port;

	if (strncmp(url, "redis://", 8) == 0) {
		p = url + 8;
		if (*p == ':' && (p = strchr(p, '@')) != NULL)
			p++;
		if (p == NULL || cluster_split(p, host, sizeof(host),
		    &port) == -1 || strchr(p, ',') || strchr(p, '/'))
			goto bad;
		return 0;
	}
	if (strncmp(url, "sentinel://", 11) == 0) {
		slash = strchr(url + 11, '/');
		if (slash == NULL || slash[1] == '\0' || (size_t)(slash -
		    url - 11) >= sizeof(buf))
			goto bad;
		memcpy(buf, url + 11, (size_t)(slash - url - 11));
		buf[slash - url - 11] = '\0';
		/* No empty address: not ",,", nor one at either end. */
		if (buf[0] == ',' || buf[0] == '\0' || strstr(buf, ",,") ||
		    buf[strlen(buf) - 1] == ',')
			goto bad;
		for (p = strtok(buf, ","); p != NULL; p = strtok(NULL, ","))
			if (cluster_split(p, host, sizeof(host), &port) == -1)
				goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "%s: expected redis://[:PASSWORD@]HOST:PORT"
	    " or sentinel://HOST:PORT[,HOST:PORT...]/NAME, not %s", key, url);
	return -1;
}

