"""The layers of src/ hold: the wire and the dialects reach rooms only
through the room engine (issue 14).  These read the source tree, so a
change that reaches around the engine fails here before it lands."""
import os
import re

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "src")

# Files above the engine: the wire layer and the protocols.
ABOVE = re.compile(r"^(dialect.*|server.*|oauth|fetch|jwt|util|config|"
                   r"control|log|proc|api|health|webhook|authhook)\.c$")
# What only the engine, the counters and the master may name.
ARENA_NAME = re.compile(r"\b(shm_[a-z_]+|arena_(open|close|check\w*|claim|"
                        r"replace|epoch|hdr|stats)|SHM_[A-Z_]+|"
                        r"ARENA_[A-Z_]+|STATS_[A-Z_]+|MEMBER_LOCATOR\w*)\b")


def source(name):
    with open(os.path.join(SRC, name)) as f:
        text = f.read()
    # Comments may speak of the arena; code may not.
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def above_engine():
    names = sorted(n for n in os.listdir(SRC) if ABOVE.match(n))
    assert "dialect_canvas.c" in names and "server_ws.c" in names
    return names


def test_no_file_above_the_engine_includes_the_arena_header():
    offenders = [n for n in above_engine()
                 if re.search(r'#\s*include\s+"shm\.h"', source(n))]
    assert offenders == []


def test_no_file_above_the_engine_names_the_arena():
    found = {}
    for n in above_engine():
        names = sorted({m.group(0) for m in ARENA_NAME.finditer(source(n))})
        if names:
            found[n] = names
    assert found == {}


def test_the_main_header_does_not_include_the_arena_header():
    assert not re.search(r'#\s*include\s+"shm\.h"', source("roomd.h"))


ENGINE = ["room.c", "room_cluster.c", "room_copy.c", "room_master.c",
          "room_txn.c"]


def test_the_engine_calls_no_socket_code():
    for name in ENGINE:
        text = source(name)
        assert re.findall(r"\b(server_\w+|conn_\w+|evbuffer_\w+|wslay_\w+)"
                          r"\s*\(", text) == [], name


def test_only_the_engine_holds_a_locked_room_or_the_arena_header():
    """room_engine.h (a locked room's insides, and shm.h through it) is
    the engine's alone: room.c, and the cluster files through
    room_cluster.h; cluster.c, the Redis link, knows neither the arena nor
    the engine's insides."""
    names = sorted(n for n in os.listdir(SRC) if n.endswith(".c"))
    holders = [n for n in names
               if re.search(r'#\s*include\s+"room_(engine|cluster)\.h"',
                            source(n))]
    assert holders == ENGINE
    assert not [n for n in os.listdir(SRC) if n.endswith(".h") and
                n not in ("room_engine.h", "room_cluster.h") and
                re.search(r'#\s*include\s+"room_engine\.h"', source(n))]
    for n in ("cluster.c", "cluster_url.c"):
        assert not re.search(r'#\s*include\s+"(shm|room_engine)\.h"',
                             source(n)), n
