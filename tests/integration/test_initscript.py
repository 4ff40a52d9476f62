"""etc/init.d/roomd, the LSB init script, driving a real roomd: start,
status, reload, restart, stop, and a bad configuration refused at start.

It needs root (an init script runs as root; roomd is started without -f,
so it detaches and writes its pid file as a system daemon does) and is
skipped otherwise.  The script reads its settings from the file that
ROOMD_DEFAULTS names instead of /etc/default/roomd, so nothing outside a
temporary directory is touched; every daemon it starts is stopped at the
end, even when a test fails."""
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import REPO, free_port, roomd_bin

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the init script is run as root")

SCRIPT = os.path.join(REPO, "etc", "init.d", "roomd")


class Init:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.pidfile = os.path.join(tmp, "roomd.pid")
        self.conf = os.path.join(tmp, "roomd.conf")
        self.defaults = os.path.join(tmp, "default")
        self.write_conf()
        with open(self.defaults, "w") as f:
            f.write(f"DAEMON={roomd_bin()}\nCONF={self.conf}\n"
                    f"PIDFILE={self.pidfile}\nDAEMON_OPTS=\"-w 1\"\n")

    def write_conf(self, extra=""):
        with open(self.conf, "w") as f:
            f.write(f"listen 127.0.0.1:{self.port}\n"
                    f"pidfile {self.pidfile}\n"
                    f"control_socket {self.tmp}/roomd.sock\n" + extra)

    def run(self, action):
        env = dict(os.environ, ROOMD_DEFAULTS=self.defaults)
        return subprocess.run(["sh", SCRIPT, action], env=env,
                              capture_output=True, text=True, timeout=30)

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def serving(self):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/canvas/rooms",
                    timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait(self, cond, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.05)
        return cond()

    def kill_all(self):
        pid = self.pid()
        if pid is not None:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture
def init():
    with tempfile.TemporaryDirectory(prefix="roomd-init-") as tmp:
        i = Init(tmp)
        try:
            yield i
        finally:
            i.kill_all()


def test_start_status_reload_restart_stop(init):
    r = init.run("status")
    assert r.returncode == 3 and "not running" in r.stdout, r

    r = init.run("start")
    assert r.returncode == 0, r
    assert init.wait(init.serving), "roomd does not answer after start"
    pid = init.pid()
    assert pid is not None and alive(pid)

    r = init.run("start")
    assert r.returncode == 0 and "is running" in r.stdout, r
    assert init.pid() == pid, "a second start started another roomd"

    r = init.run("status")
    assert r.returncode == 0 and "is running" in r.stdout, r

    # reload: the same master, a new setting taken, still serving
    init.write_conf("max_message_bytes 2M\n")
    r = init.run("reload")
    assert r.returncode == 0, r
    time.sleep(0.5)
    assert init.pid() == pid and alive(pid) and init.serving()

    # a bad configuration is refused by reload and the daemon keeps going
    init.write_conf("no_such_setting 1\n")
    r = init.run("reload")
    assert r.returncode == 1 and "no_such_setting" in r.stderr, r
    assert alive(pid) and init.serving()
    init.write_conf()

    r = init.run("restart")
    assert r.returncode == 0, r
    assert init.wait(init.serving), "roomd does not answer after restart"
    pid2 = init.pid()
    assert pid2 is not None and pid2 != pid and not alive(pid)

    r = init.run("stop")
    assert r.returncode == 0, r
    assert init.wait(lambda: not alive(pid2)), "the master did not exit"
    assert not init.serving()
    r = init.run("status")
    assert r.returncode == 3, r
    r = init.run("stop")
    assert r.returncode == 0 and "not running" in r.stdout, r


def test_start_with_a_bad_configuration_fails_and_starts_nothing(init):
    init.write_conf("workers many\n")
    r = init.run("start")
    assert r.returncode == 1, r
    assert "workers" in r.stderr, r
    assert init.pid() is None
    assert not init.serving()


def test_unknown_action_is_usage_and_exit_2(init):
    r = init.run("frobnicate")
    assert r.returncode == 2 and "usage" in r.stderr, r
