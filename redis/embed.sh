#!/bin/sh
# embed.sh DIR: the roomd library of Redis functions as C (cluster_lib.h):
# "#!lua name=roomd", then DIR/lib.lua, then the other DIR/*.lua in the
# order of their names, joined by newlines (doc/cluster.txt, "Loading").
dir=$1
{
	printf '#!lua name=roomd\n\n'
	cat "$dir/lib.lua"
	for f in $(ls "$dir"/*.lua | LC_ALL=C sort); do
		[ "$(basename "$f")" = lib.lua ] && continue
		printf '\n'
		cat "$f"
	done
} | od -An -v -tx1 | awk '
BEGIN { print "/* Made by redis/embed.sh from the files of redis/: do not edit. */"
	print "static const char cluster_lib[] = {" }
{ line = ""; for (i = 1; i <= NF; i++) line = line "0x" $i ","; print "\t" line }
END { print "\t0x00\n};" }'
