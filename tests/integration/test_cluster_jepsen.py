"""A checker in the style of Jepsen for cluster mode (issue 15): canvas
members on three hosts append concurrently while a nemesis kills hosts
whole (and restarts them on the same port and arena file) and kills and
restarts Redis.  Each member is a client that resumes: when its socket
closes it reconnects to the next host with the last pointer it received.

Afterwards, all faults healed, the room's whole log is read on every host
and must be the same, and (cluster.check_members):
- every acknowledged op (an action its sender saw echoed with a pointer)
  appears exactly once in it;
- every member saw, within an epoch, pointers without a gap or a
  duplicate, across all its reconnections;
- no (epoch, pointer) names two different ops, for any two members or the
  final log.

Bounded: ROOMD_JEPSEN_SECONDS (default 40) of faults, a few hundred ops
per host.  The schedule is random, from ROOMD_JEPSEN_SEED (default: the
time; printed on failure), one fault at a time and at most one host down.
Runs under the ASan build as it is (ROOMD_BIN=build-asan/roomd); the logs
of every host's every incarnation must hold no sanitizer report.
"""
import asyncio
import os
import random
import time

from cluster import (cluster_hosts, final_logs, members_on,  # noqa: F401
                     redis_factory, room_lived, verdict)
from conftest import run

SECONDS = float(os.environ.get("ROOMD_JEPSEN_SECONDS", "40"))


class Nemesis:
    """One fault at a time, chosen at random: kill a host whole and start
    it again 1 to 3 s later, or kill Redis and start it again at once.
    .history lists what it did, with times, for the report."""

    def __init__(self, cluster, rng):
        self.c = cluster
        self.rng = rng
        self.history = []
        self.t0 = time.monotonic()

    def note(self, what):
        self.history.append(f"{time.monotonic() - self.t0:6.1f} s {what}")

    def kill_host(self):
        h = self.rng.choice(self.c.hosts)
        self.note(f"kill {h.name}")
        h.kill()
        time.sleep(self.rng.uniform(1, 3))
        h.start()
        self.note(f"{h.name} started again")

    def restart_redis(self):
        self.note("kill Redis")
        self.c.redis.restart()
        self.note("Redis started again")

    async def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(self.rng.uniform(2, 5))
            fault = self.rng.choice([self.kill_host, self.kill_host,
                                     self.restart_redis])
            await asyncio.to_thread(fault)

    def heal(self):
        for h in self.c.hosts:
            if not h.running:
                h.start()
                self.note(f"{h.name} started (heal)")


def test_acknowledged_ops_survive_host_and_redis_kills_once_in_order(
        cluster_hosts):
    seed = int(os.environ.get("ROOMD_JEPSEN_SEED", time.time()))
    rng = random.Random(seed)
    c = cluster_hosts(3, room_ttl=120)
    rid = "jepsen"
    ms = members_on(c, rid, per_host=2)
    nem = Nemesis(c, rng)

    async def body():
        stop, done = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.ensure_future(m.run(stop, 0.25, done=done))
                 for m in ms]
        try:
            await asyncio.sleep(1.5)
            await nem.run(SECONDS)
            await asyncio.to_thread(nem.heal)
            await asyncio.sleep(4)          # the members catch up
            stop.set()
            await asyncio.sleep(2)          # the last echoes
            # Read while the members are connected: a canvas room ends
            # with its last WebSocket.
            return await final_logs(c, rid, ms[0].token)
        finally:
            stop.set()
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    logs = run(body(), SECONDS + 120)
    what = f"seed {seed}; nemesis:\n  " + "\n  ".join(nem.history)
    acked = sum(len(m.acked) for m in ms)
    assert acked >= 100, f"only {acked} ops acknowledged; {what}"
    assert sum(m.resumes for m in ms) > 0, f"no member resumed; {what}"
    try:
        verdict(ms, logs, "all")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{what}") from None
    room_lived(ms)
