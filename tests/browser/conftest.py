"""What the browser tests share.

Each test module starts its own roomd on a free loopback port (serving the
repository's htdocs, through tests/integration's start_roomd) and each
person of a test gets a headless Chromium of its own (Debian's chromium,
driven by Debian's chromedriver through python3-selenium: its own
profile, cookies and storage, as a browser context would have).  Both are
stopped at the end, also when a test fails.  Every wait is bounded.

Environment: ROOMD_BIN (the roomd to test), CHROMIUM_BIN (default
/usr/bin/chromium), CHROMEDRIVER_BIN (default /usr/bin/chromedriver),
ROOMD_BROWSER_ARTIFACTS (where screenshots go, default artifacts/).
"""
import contextlib
import importlib.util
import json
import os
import re
import selectors
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import (StaleElementReferenceException,
                                        TimeoutException, WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

TESTDIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTDIR))
HTDOCS = os.path.join(REPO, "htdocs")
ARTIFACTS = os.environ.get("ROOMD_BROWSER_ARTIFACTS") or \
    os.path.join(TESTDIR, "artifacts")
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

WAIT = 10.0         # bound of one wait in a page, in seconds


def _integration():
    """tests/integration/conftest.py, under a name of its own: its daemon
    and HTTP helpers are shared, not copied."""
    path = os.path.join(REPO, "tests", "integration", "conftest.py")
    spec = importlib.util.spec_from_file_location("roomd_integration", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IT = _integration()
http = IT.http_req
free_port = IT.free_port


def start_roomd(conf="", workers=2):
    return IT.start_roomd(f"htdocs {HTDOCS}\n" + conf, workers)


def pytest_sessionfinish(session, exitstatus):
    """No daemon outlives the run."""
    for d in list(IT._LIVE):
        d.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)     # for the session fixture
    if rep.failed:
        for d in list(IT._LIVE):
            rep.sections.append((f"roomd log (port {d.port}, last 40 lines)",
                                 d.log_tail(40)))


# ------------------------------------------------------------------ relay

class Proxy:
    """A TCP relay in front of roomd, so that a test can cut a browser's
    connections the hard way (a reset, no close frame: the page sees an
    abnormal close, 1006) and refuse new ones for a while.  It notes the
    request line of every HTTP request that passes ("GET /path"), so a
    test can see what URL a page reconnected with.  One thread serves
    every connection."""

    def __init__(self, target_port):
        self.target = target_port
        self.requests = []
        self.blocked = False
        self._sel = selectors.DefaultSelector()
        self._peer = {}             # socket -> the other end
        self._frames = set()        # client sockets past an upgrade
        self._calls = []
        self._lock = threading.Lock()
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._listen, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def _reset(s):
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        s.close()

    def _drop(self, s):
        for x in (s, self._peer.get(s)):
            if x is None or x.fileno() == -1:
                continue
            self._sel.unregister(x)
            self._peer.pop(x, None)
            self._frames.discard(x)
            self._reset(x)

    def _accept(self):
        client, _ = self._listen.accept()
        if self.blocked:
            self._reset(client)
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.target), 5)
        except OSError:
            self._reset(client)
            return
        for s in (client, up):
            s.settimeout(5)
            self._sel.register(s, selectors.EVENT_READ, "client"
                               if s is client else "upstream")
        self._peer[client], self._peer[up] = up, client

    def _relay(self, s, side):
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(s)
            return
        if side == "client" and s not in self._frames:
            text = data.decode("latin-1")
            for m in re.finditer(r"^([A-Z]+) (\S+) HTTP/1\.[01]\r$", text,
                                 re.M):
                self.requests.append(f"{m.group(1)} {m.group(2)}")
            if re.search(r"^upgrade: *websocket\r$", text, re.M | re.I):
                self._frames.add(s)     # frames from here
        try:
            self._peer[s].sendall(data)
        except (OSError, KeyError):
            self._drop(s)

    def _loop(self):
        while self._running:
            for key, _ in self._sel.select(0.1):
                s = key.fileobj
                if s is self._listen:
                    self._accept()
                elif s is self._wake_r:
                    self._wake_r.recv(64)
                    with self._lock:
                        calls, self._calls = self._calls, []
                    for fn, done in calls:
                        fn()
                        done.set()
                elif s.fileno() != -1:
                    self._relay(s, key.data)

    def _call(self, fn):
        """Run fn in the relay's thread and wait for it."""
        done = threading.Event()
        with self._lock:
            self._calls.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise RuntimeError("the relay did not answer")

    def cut(self):
        """Reset every connection that passes now."""
        def cut_all():
            for s in list(self._peer):
                self._drop(s)
        self._call(cut_all)

    def block(self):
        """Refuse (reset) every new connection."""
        self.blocked = True

    def unblock(self):
        self.blocked = False

    def close(self):
        self.cut()
        self._running = False
        self._thread.join(5)
        for s in (self._listen, self._wake_r, self._wake_w):
            s.close()


# ---------------------------------------------------------------- Chromium

class Chromium:
    """A headless Chromium of its own (a fresh profile: own cookies and
    storage) and the chromedriver session that drives it."""

    def __init__(self, insecure=False):
        self.insecure = insecure
        self.profile = tempfile.mkdtemp(prefix="roomd-chromium-")
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in CHROMIUM_ARGS:
            o.add_argument(a)
        o.add_argument("--user-data-dir=" + self.profile)
        o.add_argument("--window-size=1200,900")
        o.set_capability("goog:loggingPrefs", {"browser": "ALL",
                                               "performance": "ALL"})
        if insecure:
            o.accept_insecure_certs = True
        try:
            self.driver = webdriver.Chrome(
                service=Service(CHROMEDRIVER), options=o)
        except Exception:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass
        finally:
            # Chromium's last processes may still write in the profile
            # for a moment after quit() returns.
            for _ in range(50):
                shutil.rmtree(self.profile, ignore_errors=True)
                if not os.path.exists(self.profile):
                    break
                time.sleep(0.1)


class Spare:
    """A Chromium started in the background, so that the next person of
    a test does not wait seconds for one."""

    def __init__(self):
        self.browser = self.error = None
        self._thread = threading.Thread(target=self._start, daemon=True)
        self._thread.start()

    def _start(self):
        try:
            self.browser = Chromium()
        except Exception as e:      # given to take()
            self.error = e

    def take(self):
        self._thread.join(60)
        if self.error is not None:
            raise self.error
        if self.browser is None:
            raise RuntimeError("Chromium did not start within 60 s")
        return self.browser


class Page:
    """One person: a Chromium of its own and its one page.  The methods
    follow what the tests do with a page: go, fill, click, read, wait."""

    def __init__(self, session, label, allowed, browser, touch=False,
                 size=(1200, 860)):
        self.session = session
        self.label = label
        self.allowed = allowed
        self.browser = browser
        self.driver = browser.driver
        self.cdp("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1,
            "mobile": touch})
        if touch:
            self.cdp("Emulation.setTouchEmulationEnabled",
                     {"enabled": True, "maxTouchPoints": 5})

    def _waiter(self, timeout):
        return WebDriverWait(self.driver, timeout, 0.05, ignored_exceptions=(
            StaleElementReferenceException,))

    def cdp(self, cmd, args):
        return self.driver.execute_cdp_cmd(cmd, args)

    # -- what the browser saw: uncaught errors, requests to other origins
    def collect(self):
        try:
            logs = self.driver.get_log("browser")
            perf = self.driver.get_log("performance")
        except WebDriverException:
            return
        for e in logs:
            if e.get("level") == "SEVERE" and "Uncaught" in e["message"]:
                self.session.problems.append(
                    f"{self.label}: uncaught error in the page: "
                    f"{e['message']}")
        for e in perf:
            m = json.loads(e["message"])["message"]
            if m.get("method") != "Network.requestWillBeSent":
                continue
            u = m["params"]["request"]["url"]
            if not u.startswith(("http:", "https:")):
                continue        # data:, blob:, the browser's own
            if not any(u.startswith(o + "/") for o in self.allowed):
                self.session.problems.append(
                    f"{self.label}: request to a foreign origin: {u}")

    # -- navigation
    def goto(self, url):
        self.driver.get(url)

    def reload(self):
        self.driver.refresh()

    @property
    def url(self):
        return self.driver.current_url

    def wait_url(self, pattern, timeout=WAIT):
        try:
            self._waiter(timeout).until(
                lambda d: re.search(pattern, d.current_url))
        except TimeoutException:
            raise AssertionError(f"{self.label}: the address did not match "
                                 f"{pattern} within {timeout} s: {self.url}")

    # -- the page's own state
    def evaluate(self, script, *args):
        """Run script (a function body, with args as arguments[i])."""
        return self.driver.execute_script(script, *args)

    def wait_js(self, script, *args, timeout=WAIT, what=None):
        """Wait until the script returns something true; returns it."""
        try:
            return self._waiter(timeout).until(
                lambda d: d.execute_script(script, *args))
        except TimeoutException:
            raise AssertionError(f"{self.label}: {what or script} not "
                                 f"true within {timeout} s")

    # -- elements
    def find(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def count(self, selector):
        return len(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def wait_for(self, selector, timeout=WAIT):
        """The element, once it is there and visible."""
        def visible(d):
            for e in d.find_elements(By.CSS_SELECTOR, selector):
                if e.is_displayed():
                    return e
            return False
        try:
            return self._waiter(timeout).until(visible)
        except TimeoutException:
            raise AssertionError(f"{self.label}: no visible {selector} "
                                 f"within {timeout} s")

    def is_visible(self, selector):
        def look():
            es = self.driver.find_elements(By.CSS_SELECTOR, selector)
            return bool(es) and es[0].is_displayed()
        return self._fresh(look)

    @staticmethod
    def _fresh(fn):
        """fn(), again if the page replaced the element meanwhile (the
        room list is redrawn as it refreshes)."""
        for _ in range(20):
            try:
                return fn()
            except StaleElementReferenceException:
                time.sleep(0.05)
        return fn()

    def text(self, selector):
        """The text of a selector once it is visible (textContent,
        trimmed, as the page has it)."""
        return self._fresh(lambda: (self.wait_for(selector).get_property(
            "textContent") or "").strip())

    def wait_text(self, selector, want, timeout=WAIT):
        """Wait until the element's text contains want (a str) or matches
        it (a compiled re); returns the text, trimmed."""
        def ok(d):
            es = d.find_elements(By.CSS_SELECTOR, selector)
            if not es:
                return False
            t = es[0].get_property("textContent") or ""
            hit = want.search(t) if isinstance(want, re.Pattern) \
                else want in t
            return t if hit else False
        try:
            return self._waiter(timeout).until(
                ok).strip()
        except TimeoutException:
            es = self.driver.find_elements(By.CSS_SELECTOR, selector)
            now = es[0].get_property("textContent") if es else None
            raise AssertionError(f"{self.label}: {selector} does not show "
                                 f"{want!r} within {timeout} s: {now!r}")

    def _ready(self, selector, timeout=WAIT):
        def ok(d):
            for e in d.find_elements(By.CSS_SELECTOR, selector):
                if e.is_displayed() and e.is_enabled():
                    return e
            return False
        try:
            return self._waiter(timeout).until(ok)
        except TimeoutException:
            raise AssertionError(f"{self.label}: {selector} is not there "
                                 f"to use within {timeout} s")

    def fill(self, selector, value):
        def do():
            e = self._ready(selector)
            e.clear()
            e.send_keys(value)
            return e.get_property("value")
        got = self._fresh(do)
        if got != value:
            raise AssertionError(f"{self.label}: {selector} holds {got!r}, "
                                 f"not {value!r}")

    def click(self, selector):
        self._fresh(lambda: self._ready(selector).click())

    def press_enter(self, selector):
        self._fresh(lambda: self._ready(selector).send_keys(Keys.ENTER))

    def input_value(self, selector):
        return self._fresh(lambda: self.find(selector).get_property("value"))

    def shot(self, what):
        return self.session.shot(self, what)

    def close(self):
        try:
            self.collect()
        finally:
            self.browser.quit()


class Session:
    """The browser side of one test: its people and their pages,
    screenshots numbered in order, and the page errors and foreign
    requests seen, which fail the test."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.step = 0
        self.pages = []
        self.problems = []
        self._spare = Spare()
        os.makedirs(ARTIFACTS, exist_ok=True)
        for f in os.listdir(ARTIFACTS):
            if f.startswith(prefix + "-") and f.endswith(".png"):
                os.remove(os.path.join(ARTIFACTS, f))

    def person(self, label, allowed, insecure=False, **kw):
        """A new person: a Chromium of its own and one page in it.
        allowed: the origins it may load from; insecure: certificates
        are not checked (the fake provider's own CA)."""
        if insecure:
            browser = Chromium(insecure=True)
        else:
            browser = self._spare.take()
            self._spare = Spare()
        try:
            p = Page(self, label, allowed, browser, **kw)
        except Exception:
            browser.quit()
            raise
        self.pages.append(p)
        return p

    def shot(self, page, what):
        self.step += 1
        name = f"{self.prefix}-{self.step:02d}-{what}.png"
        page.driver.save_screenshot(os.path.join(ARTIFACTS, name))
        return name

    def check(self):
        for p in self.pages:
            p.collect()
        assert not self.problems, "problems in the pages:\n" + \
            "\n".join(self.problems)

    def close(self):
        """Every browser, the spare too, quit at once."""
        quits = [threading.Thread(target=p.close) for p in self.pages]
        quits.append(threading.Thread(target=lambda: self._close_spare()))
        for t in quits:
            t.start()
        for t in quits:
            t.join(30)
        self.pages = []

    def _close_spare(self):
        try:
            self._spare.take().quit()
        except Exception:
            pass


@pytest.fixture
def session(request):
    """session(prefix): the test's browsers; on a failure a picture of
    every page (…-FAILED-…); uncaught page errors and requests to other
    origins fail the test; every browser is closed at the end."""
    made = []

    def make(prefix):
        s = Session(prefix)
        made.append(s)
        return s

    yield make
    failed = getattr(request.node, "rep_call", None)
    for s in made:
        if failed is not None and failed.failed:
            for p in s.pages:
                with contextlib.suppress(Exception):
                    s.shot(p, f"FAILED-{p.label}")
        try:
            if failed is not None and failed.passed:
                s.check()
        finally:
            s.close()
