"""/healthz and /readyz on metrics_listen (issue 16).

/healthz is the master's own answer; /readyz is 200 only while every
worker slot serves (its heartbeat is fresh), the arena walk passed and the
cluster link is up, else 503 with a one-line reason.  A worker stopped
with SIGSTOP turns it 503 within seconds, and SIGCONT 200 again; the API,
whose one socket every worker accepts on, keeps answering meanwhile.  In
cluster mode /readyz follows the link to Redis."""
import os
import signal
import socket
import time

import pytest

from conftest import free_port, http_req, stop_clean
from redisd import redis_factory, redis_server  # noqa: F401 (fixtures)

KEY = "health-key-0123456789abcdef"


class Port:
    def __init__(self, port):
        self.host = "127.0.0.1"
        self.port = port


@pytest.fixture
def daemon(roomd_factory):
    """A daemon with metrics_listen and api_listen: (d, metrics, api)."""
    def make(extra="", workers=2):
        mport, aport = free_port(), free_port()
        d = roomd_factory(f"metrics_listen 127.0.0.1:{mport}\n"
                          f"api_listen 127.0.0.1:{aport}\n"
                          f"api_key {KEY}\n{extra}", workers=workers)
        return d, Port(mport), Port(aport)
    return make


def get(p, path, method="GET", timeout=5.0):
    return http_req(p, method, path, timeout=timeout)


def ready_is(m, status, timeout):
    """Poll /readyz until it answers status; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = get(m, "/readyz")
        if r.status == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def worker_pids(d):
    """The master's children: its workers."""
    with open(f"/proc/{d.master_pid}/task/{d.master_pid}/children") as f:
        return [int(x) for x in f.read().split()]


def test_healthz_and_readyz_answer_200_with_one_line(daemon):
    d, m, _ = daemon()
    r = get(m, "/healthz")
    assert r.status == 200 and r.body == b"ok\n", r
    assert r.header("Content-Type") == "text/plain", r
    r = ready_is(m, 200, 10)
    assert r.status == 200 and r.body == b"ok\n", r
    r = get(m, "/readyz?verbose=1")
    assert r.status == 200, r
    assert get(m, "/metrics").status == 200
    assert get(m, "/health").status == 404
    assert get(m, "/readyz", method="POST").status == 404
    stop_clean(d)


def test_readyz_turns_503_when_a_worker_is_stopped_and_200_when_it_goes_on(
        daemon):
    d, m, api = daemon()
    assert ready_is(m, 200, 10).status == 200
    pids = worker_pids(d)
    assert len(pids) == 2, pids
    victim = pids[1]
    os.kill(victim, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = ready_is(m, 503, 10)
        took = time.monotonic() - t0
        assert r.status == 503, f"/readyz still {r.status} after {took:.1f} s"
        assert took < 6, f"/readyz took {took:.1f} s to see it"
        line = r.body.decode()
        assert line.endswith("\n") and line.count("\n") == 1, line
        assert f"pid {victim}" in line and "has not answered" in line, line
        # The master is alive, and the API is served by the other worker.
        assert get(m, "/healthz").status == 200
        for _ in range(10):
            r = http_req(api, "GET", "/api/rooms", timeout=3.0,
                         headers={"Authorization": f"Bearer {KEY}"})
            assert r.status == 200, r
    finally:
        os.kill(victim, signal.SIGCONT)
    t0 = time.monotonic()
    r = ready_is(m, 200, 10)
    assert r.status == 200, r
    assert time.monotonic() - t0 < 5
    assert worker_pids(d) == pids
    stop_clean(d)


def test_readyz_is_200_again_once_a_killed_workers_slot_serves_again(daemon):
    d, m, _ = daemon()
    assert ready_is(m, 200, 10).status == 200
    pid = worker_pids(d)[0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in worker_pids(d) or len(worker_pids(d)) != 2:
        assert time.monotonic() < deadline, "the worker was not replaced"
        time.sleep(0.05)
    # The new worker beats as soon as it serves.
    r = ready_is(m, 200, 5)
    assert r.status == 200, r


def test_readyz_does_without_the_arena_walk_when_it_is_off(daemon):
    d, m, _ = daemon("arena_walk_interval 0\n", workers=1)
    r = ready_is(m, 200, 10)
    assert r.status == 200 and r.body == b"ok\n", r
    stop_clean(d)


def test_a_silent_metrics_client_holds_the_master_up_one_second_at_most(
        daemon):
    d, m, _ = daemon()
    assert ready_is(m, 200, 10).status == 200
    s = socket.create_connection((m.host, m.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")   # and nothing more
        t0 = time.monotonic()
        r = get(m, "/healthz")
        assert r.status == 200, r
        assert time.monotonic() - t0 < 2.5
        # A client that sends a byte now and then is held no longer.
        s2 = socket.create_connection((m.host, m.port), timeout=5)
        try:
            t0 = time.monotonic()
            for _ in range(3):
                s2.sendall(b"X")
                time.sleep(0.3)
            r = get(m, "/readyz")
            assert r.status == 200, r
            assert time.monotonic() - t0 < 3.5
        finally:
            s2.close()
    finally:
        s.close()
    stop_clean(d)


def test_readyz_follows_the_cluster_link(daemon, redis_server):
    """In cluster mode /readyz is 503 while the host holds no lease on
    Redis (Redis killed), and 200 again once it does."""
    d, m, _ = daemon(f"cluster redis://127.0.0.1:{redis_server.port}\n"
                     f"cluster_host readyz-{os.getpid()}\n"
                     "cluster_lease 4\n")
    r = ready_is(m, 200, 15)
    assert r.status == 200, r
    redis_server.kill9()
    r = ready_is(m, 503, 15)
    assert r.status == 503 and b"cluster link down" in r.body, r
    assert get(m, "/healthz").status == 200
    redis_server.start()
    r = ready_is(m, 200, 20)
    assert r.status == 200, r
