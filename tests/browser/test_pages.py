"""The files of htdocs as roomd serves them: each with its type, ETag and
304, the 404 of a missing page; and none refers to anything outside the
server (no CDN, no external font or script)."""
import os
import re

import pytest

from conftest import HTDOCS, http, start_roomd

TYPES = {
    ".html": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".svg": "image/svg+xml", ".json": "application/json",
    ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain",
}


@pytest.fixture(scope="module")
def d():
    d = start_roomd()
    yield d
    d.stop()


def htdocs_files():
    out = []
    for root, _, files in os.walk(HTDOCS):
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), HTDOCS)
                       .replace(os.sep, "/"))
    return sorted(out)


def read(f):
    with open(os.path.join(HTDOCS, f), "rb") as fp:
        return fp.read()


def test_every_file_of_htdocs_is_served_with_its_type_an_etag_and_304(d):
    files = htdocs_files()
    for want in ("index.html", "canvas.html", "canvas.js", "chat.html",
                 "chat.js", "common.js", "index.js", "style.css"):
        assert want in files, f"htdocs has no {want}"
    for f in files:
        r = http(d, "GET", "/" + f)
        assert r.status == 200, f"/{f}: {r.status}"
        want = TYPES.get(os.path.splitext(f)[1])
        assert want, f"/{f}: a type roomd does not know"
        assert r.header("Content-Type").split(";")[0] == want, f"/{f}"
        assert r.body == read(f), f"/{f}: not the file's content"
        etag = r.header("ETag")
        assert etag, f"/{f}: no ETag"
        again = http(d, "GET", "/" + f, headers={"If-None-Match": etag})
        assert again.status == 304, f"/{f} with its ETag"
    root = http(d, "GET", "/")
    assert root.status == 200
    assert root.body == read("index.html"), "/ is not index.html"
    missing = http(d, "GET", "/no-such-page.html")
    assert missing.status == 404
    assert re.match(r"text/html", missing.header("Content-Type"))


def test_no_page_refers_to_anything_outside_the_server():
    for f in htdocs_files():
        text = re.sub(r'xmlns(:\w+)?="[^"]*"', "",
                      read(f).decode("utf-8"))
        bad = re.findall(r"\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text,
                         re.I)
        assert not bad, f"{f} refers to {bad}"
        assert not re.search(r"""@import\s+url\(\s*['"]?(https?:)?//""",
                             text), f"{f} imports from outside"
