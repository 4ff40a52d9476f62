/*
 * dialect.c: the table of dialects roomd speaks, and the routing of a
 * request path to the dialect mounted there (the longest mount that is a
 * whole-segment prefix of the path wins).
 */
#include "config.h"

#include <string.h>

#include "roomd.h"

static const struct dialect *dialects[] = {
	&dialect_canvas,
	&dialect_chat,
	&dialect_classroom,
	&dialect_echo,
	&dialect_lobby,
	&dialect_screenshare,
};

/* The i-th dialect, or NULL past the end. */
const struct dialect *
dialect_at(size_t i)
{
	return i < sizeof(dialects) / sizeof(dialects[0]) ? dialects[i] : NULL;
}

const struct dialect *
dialect_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++)
		if (strcmp(dialects[i]->name, name) == 0)
			return dialects[i];
	return NULL;
}

const struct dialect *
dialect_find_id(unsigned id)
{
	size_t	 i;

	for (i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++)
		if (dialects[i]->id == id)
			return dialects[i];
	return NULL;
}

/* The mount serving path, and in *sub the rest of the path after it. */
const struct mount *
dialect_route(const char *path, const char **sub)
{
	const struct mount	*m, *best = NULL;
	size_t			 len, bestlen = 0;
	int			 i;

	for (i = 0; i < env->conf.nmounts; i++) {
		m = &env->conf.mounts[i];
		len = strcmp(m->path, "/") == 0 ? 0 : strlen(m->path);
		if (strncmp(path, m->path, len) != 0 ||
		    (path[len] != '\0' && path[len] != '/'))
			continue;
		if (best == NULL || len > bestlen) {
			best = m;
			bestlen = len;
		}
	}
	if (best != NULL)
		*sub = path + bestlen;
	return best;
}
