"""Driving and reading canvas.html from a test: strokes with the mouse
(CDP input events, at viewport coordinates), and what the page knows of
its connection, its log and its pixels (window.roomdCanvas, the board)."""
from conftest import WAIT

W, H = 800, 500


def board_box(page, scroll=True):
    """The board's place in the viewport, scrolled into view if need be."""
    return page.evaluate("""
        const b = document.getElementById('board');
        if (arguments[0])
            b.scrollIntoView({block: 'nearest'});
        const r = b.getBoundingClientRect();
        return {x: r.x, y: r.y, width: r.width, height: r.height};""",
        scroll)


def at(box, x, y):
    """Viewport coordinates of the board's logical point (x, y)."""
    return (box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H)


def _mouse(page, kind, x, y, buttons):
    page.cdp("Input.dispatchMouseEvent", {
        "type": kind, "x": x, "y": y, "button": "left",
        "buttons": buttons, "clickCount": 1 if kind != "mouseMoved" else 0})


def draw_stroke(page, points, steps=4):
    """A stroke with the mouse through logical board points, each segment
    in steps moves."""
    box = board_box(page)
    x0, y0 = at(box, *points[0])
    _mouse(page, "mouseMoved", x0, y0, 0)
    _mouse(page, "mousePressed", x0, y0, 1)
    px, py = x0, y0
    for p in points[1:]:
        x, y = at(box, *p)
        for i in range(1, steps + 1):
            _mouse(page, "mouseMoved", px + (x - px) * i / steps,
                   py + (y - py) * i / steps, 1)
        px, py = x, y
    _mouse(page, "mouseReleased", px, py, 0)


def state(page):
    """What the page knows of its connection and log."""
    return page.evaluate("""
        const c = window.roomdCanvas;
        return c ? {state: c.state, pointer: c.pointer,
            received: c.received, sent: c.sent, idle: c.idle} : null;""")


def wait_idle(page, timeout=WAIT):
    """Until the page has sent everything drawn on it."""
    page.wait_js("return window.roomdCanvas && window.roomdCanvas.idle",
                 timeout=timeout, what="the page sent all it drew")


def wait_received(page, n, timeout=WAIT):
    """Until the page has drawn n actions of the log."""
    try:
        page.wait_js("return window.roomdCanvas && "
                     "window.roomdCanvas.received >= arguments[0]", n,
                     timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{page.label}: the page did not draw {n} "
                             f"actions within {timeout} s: {state(page)}")


def wait_state(page, want, timeout=WAIT):
    try:
        page.wait_js("return window.roomdCanvas && "
                     "window.roomdCanvas.state === arguments[0]", want,
                     timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{page.label}: the page is not {want!r} "
                             f"within {timeout} s: {state(page)}")


def board_png(page):
    """The board as a PNG data URL: equal strings, equal pixels."""
    return page.evaluate("return document.getElementById('board')"
                         ".toDataURL('image/png');")


def inked_pixels(page):
    """How many pixels of the board are not white."""
    return page.evaluate("""
        const c = document.getElementById('board');
        const d = c.getContext('2d').getImageData(0, 0, c.width,
            c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255)
                n++;
        return n;""")


def differing_pixels(a, b):
    """Pixels that differ between two pages' boards (0 when equal)."""
    grab = """
        const c = document.getElementById('board');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width,
            c.height).data);"""
    da, db = a.evaluate(grab), b.evaluate(grab)
    if len(da) != len(db):
        return float("inf")
    return sum(1 for i in range(0, len(da), 4) if da[i:i + 4] != db[i:i + 4])
