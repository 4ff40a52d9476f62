"""Signing in to the chat page through account providers, in Chromium.

A fake provider (tests/integration/fake_provider.py, over HTTPS with a CA
of its own) stands for Google (OpenID Connect) and GitHub (OAuth 2.0 with a
user endpoint).  Each person clicks a provider's button, goes through the
provider and comes back signed in under the name the provider vouches
for; they then talk in a channel; signing out forgets the session."""
import importlib.util
import os
import sys

import pytest

from chat_page import wait_chat_state
from conftest import REPO, start_roomd


def _fake_provider():
    # fake_provider.py imports its neighbour jwt_helper.py.
    here = os.path.join(REPO, "tests", "integration")
    if here not in sys.path:
        sys.path.append(here)
    path = os.path.join(here, "fake_provider.py")
    spec = importlib.util.spec_from_file_location("fake_provider", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FP = _fake_provider()


@pytest.fixture(scope="module")
def idp():
    with FP.FakeProvider() as p:
        yield p


@pytest.fixture(scope="module")
def d(idp):
    d = start_roomd(f"chat_ca_file {idp.ca_file}\n" + idp.conf("fake") +
                    idp.conf("gh", FP.CLIENT_OAUTH, issuer=idp.base + "/gh"))
    yield d
    d.stop()


def sign_in(s, d, idp, label, provider):
    page = s.person(label, [d.base, idp.base], insecure=True)
    page.goto(d.base + "/chat.html")
    button = f'a[data-provider="{provider}"]'
    assert page.text(button) == f"Sign in with {provider}"
    page.click(button)
    wait_chat_state(page, "connected")
    return page


def test_sign_in_through_two_providers_talk_sign_out(d, idp, session):
    s = session("signin")
    ada = sign_in(s, d, idp, "ada", "fake")
    ada.shot("ada-signed-in")
    assert ada.text("#chat-me") == "ada"
    assert ada.text("#chat-badge") == "signed in"
    assert ada.evaluate("return location.hash") == "", \
        "the token is taken out of the address"
    assert ada.evaluate("return window.roomdChat.signedIn") is True

    mona = sign_in(s, d, idp, "mona", "gh")
    assert mona.text("#chat-me") == "octocat"

    # They talk in a channel, under their names.
    ada.fill("#channel-name", "signed")
    ada.click("#channel-create")
    mona.wait_text("#log", "#signed was created.")
    ada.click("#channel-join")
    mona.click('#other-list li[data-name="#signed"] button.join')
    ada.wait_text("#log", "octocat joined #signed.")
    ada.fill("#message-input", "hello, signed in")
    ada.press_enter("#message-input")
    mona.wait_js("return [...document.querySelectorAll('#messages li.msg')]"
                 ".some((li) => li.querySelector('.from').textContent === "
                 "'ada' && li.querySelector('.text').textContent === "
                 "'hello, signed in');", what="ada's message at mona's")
    mona.shot("mona-sees-ada")

    # A reload keeps the session (this tab's storage)...
    ada.reload()
    wait_chat_state(ada, "connected")
    assert ada.text("#chat-me") == "ada"

    # ...and signing out forgets it.
    ada.click("#disconnect")
    ada.wait_for("#signin")
    ada.reload()
    ada.wait_for('a[data-provider="fake"]')
    assert ada.evaluate("return window.roomdChat.signedIn") is False
    ada.shot("ada-signed-out")
    s.check()
