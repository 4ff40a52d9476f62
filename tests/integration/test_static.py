"""Static files from htdocs: types, ETag and 304, index.html, and no way
out of the document root (.., encoded dots and slashes, symbolic links)."""
import os
import socket

import pytest



@pytest.fixture
def site(tmp_path, roomd_factory):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / "app.js").write_text("let x = 1;")
    (root / "style.css").write_text("p{}")
    (root / "data.bin").write_bytes(b"\x00\x01")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    (root / "link-out").symlink_to(secret)
    (root / "dir-out").symlink_to(tmp_path)
    (root / "link-in").symlink_to(root / "app.js")
    d = roomd_factory(f"htdocs {root}\nmount canvas /canvas\n")
    return d


def raw_get(d, path, method="GET", headers=""):
    """A request with the path exactly as given (no client normalizing)."""
    s = socket.create_connection((d.host, d.port), timeout=5)
    try:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in
            (ln.partition(":") for ln in lines[1:])}
    return status, hdrs, body


@pytest.mark.parametrize("path,ctype,body", [
    ("/", "text/html", b"<h1>home</h1>"),
    ("/index.html", "text/html", b"<h1>home</h1>"),
    ("/sub/", "text/html", b"<h1>sub</h1>"),
    ("/app.js", "text/javascript", b"let x = 1;"),
    ("/style.css", "text/css", b"p{}"),
    ("/data.bin", "application/octet-stream", b"\x00\x01"),
    ("/link-in", "text/javascript", b"let x = 1;"),   # type of the target
])
def test_files_are_served_with_their_type(site, path, ctype, body):
    status, hdrs, got = raw_get(site, path)
    assert status == 200, (path, status)
    assert hdrs["content-type"].startswith(ctype), hdrs
    assert got == body


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt", "/link-out", "/dir-out/secret.txt",
    "/nope.html", "/sub/nope", "/%00", "/..",
])
def test_nothing_outside_the_root_is_served(site, path):
    status, hdrs, body = raw_get(site, path)
    assert status in (400, 404), (path, status, body[:100])
    assert b"outside the root" not in body


def test_etag_and_if_none_match_give_304(site):
    status, hdrs, _ = raw_get(site, "/app.js")
    assert status == 200 and "etag" in hdrs and "last-modified" in hdrs
    status2, _, body2 = raw_get(site, "/app.js",
                                headers=f"If-None-Match: {hdrs['etag']}\r\n")
    assert status2 == 304 and body2 == b""
    status3, _, _ = raw_get(site, "/app.js",
                            headers='If-None-Match: "other"\r\n')
    assert status3 == 200


def test_head_has_no_body_and_other_methods_are_405(site):
    status, hdrs, body = raw_get(site, "/app.js", method="HEAD")
    assert status == 200 and body == b""
    assert hdrs["content-length"] == str(len("let x = 1;"))
    status, hdrs, body = raw_get(site, "/app.js", method="POST",
                                 headers="Content-Length: 0\r\n")
    assert status == 405 and "GET" in hdrs.get("allow", "")
    assert body.startswith(b"<!doctype html>")


def test_mounted_dialects_take_precedence(site):
    status, hdrs, body = raw_get(site, "/canvas/rooms")
    assert status == 200 and hdrs["content-type"] == "application/json"


def test_a_reload_moves_the_document_root(tmp_path, roomd_factory):
    """htdocs is a live setting: after SIGHUP the new root is served, by
    every worker, with no restart (the worker pids stay)."""
    import signal
    import time
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "page.txt").write_text("old root")
    (new / "page.txt").write_text("new root")
    d = roomd_factory(f"htdocs {old}\nmount canvas /canvas\n")
    pids = {raw_get(d, "/page.txt")[1]["x-roomd-worker"] for _ in range(20)}
    assert raw_get(d, "/page.txt")[2] == b"old root"
    with open(d.conf_path) as f:
        text = f.read().replace(f"htdocs {old}", f"htdocs {new}")
    with open(d.conf_path, "w") as f:
        f.write(text)
    os.kill(d.master_pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    bodies = set()
    while time.monotonic() < deadline:
        bodies = {raw_get(d, "/page.txt")[2] for _ in range(20)}
        if bodies == {b"new root"}:
            break
        time.sleep(0.1)
    assert bodies == {b"new root"}, bodies
    after = {raw_get(d, "/page.txt")[1]["x-roomd-worker"] for _ in range(20)}
    assert after <= pids, (pids, after)     # no worker was replaced
