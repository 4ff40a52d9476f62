"""Driving and reading chat.html from a test."""
from conftest import WAIT

MESSAGES = """
    return [...document.querySelectorAll('#messages li.msg')].map((li) =>
        li.querySelector('.from').textContent + ': ' +
        li.querySelector('.text').textContent);"""


def enter(page, base, name):
    """Open the chat page and enter as a guest under name."""
    page.goto(base + "/chat.html")
    page.fill("#chat-name", name)
    page.click("#signin-button")


def wait_chat_state(page, want, timeout=WAIT):
    try:
        page.wait_js("return window.roomdChat && "
                     "window.roomdChat.state === arguments[0]", want,
                     timeout=timeout)
    except AssertionError:
        now = page.evaluate("return window.roomdChat && "
                            "window.roomdChat.state")
        raise AssertionError(f"{page.label}: chat page not {want!r} (it is "
                             f"{now!r})")


def shown_messages(page):
    """The messages shown in the selected conversation, as "name: text"."""
    return page.evaluate(MESSAGES)


def wait_message(page, line, timeout=WAIT):
    try:
        page.wait_js(
            "return [...document.querySelectorAll('#messages li.msg')]"
            ".some((li) => li.querySelector('.from').textContent + ': ' +"
            " li.querySelector('.text').textContent === arguments[0]);",
            line, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{page.label}: {line!r} not shown; shown: "
                             f"{shown_messages(page)}")
