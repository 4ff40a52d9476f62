"""The harness's own watch: an uncaught error in a page and a request to
another origin are both seen, so that the tests that rely on them to fail
can fail."""
import time

import pytest

from conftest import Session, start_roomd


@pytest.fixture(scope="module")
def d():
    d = start_roomd()
    yield d
    d.stop()


def test_a_page_error_and_a_foreign_request_are_problems(d):
    s = Session("harness")
    try:
        p = s.person("watched", [d.base])
        p.goto(d.base + "/index.html")
        p.evaluate("setTimeout(() => { throw new Error('planted'); }, 0);"
                   "fetch('http://127.0.0.2:9/elsewhere').catch(() => {});")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(s.problems) < 2:
            p.collect()
            time.sleep(0.1)
        with pytest.raises(AssertionError) as e:
            s.check()
        text = str(e.value)
        assert "watched: uncaught error in the page" in text, text
        assert "planted" in text, text
        assert "watched: request to a foreign origin: " \
            "http://127.0.0.2:9/elsewhere" in text, text
    finally:
        s.close()
