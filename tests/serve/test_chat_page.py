"""The chat page (``scratchllm/serve/static/index.html``) in a real browser.

Playwright drives Debian's Chromium (``apt-get install chromium``) through ``executable_path``;
``playwright install`` is never needed. Without Chromium the tests skip, and fail under ``CI``.

Every test reaches the server through the ``server_url`` fixture: by default the fake server of
``fake_openai.py``; override that one fixture to drive a real ``scratchllm serve``. The tests that
need the fake's script or its records (the requests it got, the streams cancelled) ask for
``fake_only`` and skip against another server.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the chat page's tests need the serve extra (fastapi)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
expect = playwright_api.expect

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPOSITORY_ROOT / "docs" / "images" / "chat-page.png"
# Set to 1 to rewrite the committed screenshot (tests otherwise write only under tmp_path).
UPDATE_SCREENSHOT = os.environ.get("SCRATCHLLM_UPDATE_SCREENSHOT") == "1"
WAIT_MS = 15_000  # the longest wait for the page: a full fake reply takes ~3 s (also conftest's)


def load_fake_openai():
    """tests/serve/fake_openai.py as a module (the test folders are not packages)."""
    path = Path(__file__).with_name("fake_openai.py")
    spec = importlib.util.spec_from_file_location("fake_openai", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_openai"] = module
    spec.loader.exec_module(module)
    return module


# ---- the server and the browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator:
    fake = load_fake_openai().FakeOpenAI(word_delay=0.06).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server_url(fake_server) -> str:
    """The server every test drives (no trailing slash). Swap this fixture for a real one: it
    must serve the page at ``/`` and the OpenAI API under ``/v1``."""
    return fake_server.url


@pytest.fixture
def fake_only(fake_server, server_url):
    """The fake server, for tests that need its script or records; they skip on another server."""
    if server_url != fake_server.url:
        pytest.skip("needs the fake server's script and records (tests/serve/fake_openai.py)")
    fake_server.requests.clear()
    fake_server.cancellations.clear()
    return fake_server


@pytest.fixture
def chat(open_chat, server_url):
    """The page, freshly opened in its own browser context (so an empty localStorage)."""
    return open_chat(server_url)


# ---- the tests -------------------------------------------------------------------------------


def test_the_model_name_comes_from_the_server(chat, fake_only):
    expect(chat.page.locator("#model-name")).to_have_text("fake-gpt2")
    chat.assert_no_console_errors()


def test_a_reply_streams_in_and_ends_with_usage_and_speed(chat):
    chat.page.get_by_label("Message").fill("What does a language model do?")
    chat.page.get_by_label("Message").press("Shift+Enter")  # a newline, not a send
    chat.page.get_by_label("Message").type("In one sentence.")
    expect(chat.page.locator(".message.user")).to_have_count(0)
    chat.page.get_by_label("Message").press("Enter")

    user = chat.page.locator(".message.user .content")
    expect(user).to_have_text("What does a language model do?\nIn one sentence.")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_enabled()
    expect(chat.replies().last.locator(".content")).not_to_be_empty(timeout=WAIT_MS)
    first = len(chat.last_reply_text())
    time.sleep(0.5)  # several words at the fake's pace
    assert len(chat.last_reply_text()) > first, "the reply did not grow while streaming"

    chat.wait_until_done()
    stats = chat.replies().last.locator(".stats")
    expect(stats).to_have_text(re.compile(r"\d+ prompt \+ \d+ completion tokens · [\d.]+ tokens/s"))
    expect(chat.page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(chat.page.get_by_role("button", name="Regenerate")).to_be_enabled()
    chat.assert_no_console_errors()


def test_the_whole_scripted_reply_arrives_and_its_usage_is_the_servers(chat, fake_only):
    chat.send("Hello")
    chat.wait_until_done()
    assert chat.last_reply_text() == fake_only.reply
    words = len(fake_only.reply.split())
    expect(chat.replies().last.locator(".stats")).to_contain_text(
        f"1 prompt + {words} completion tokens"
    )
    request = fake_only.requests[-1]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["model"] == "fake-gpt2"
    assert request["messages"] == [{"role": "user", "content": "Hello"}]
    chat.assert_no_console_errors()


def test_stop_cancels_the_request_on_the_server(chat, fake_only):
    chat.send("Tell me about language models")
    expect(chat.replies().last.locator(".content")).not_to_be_empty(timeout=WAIT_MS)
    chat.page.get_by_role("button", name="Stop").click()

    chat.wait_until_done()
    expect(chat.replies().last.locator(".stats")).to_contain_text("stopped")
    stopped_text = chat.last_reply_text()
    assert 0 < len(stopped_text) < len(fake_only.reply)
    deadline = time.monotonic() + 5
    while not fake_only.cancellations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_only.cancellations) == 1, "the server did not see the client leave"
    time.sleep(0.3)  # the reply stays as it was when stopped
    assert chat.last_reply_text() == stopped_text
    chat.assert_no_console_errors()


def test_an_over_long_prompt_shows_the_servers_error_which_can_be_dismissed(chat):
    chat.send("word " * 5000)
    banner = chat.page.get_by_role("alert")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("maximum context length")
    expect(chat.replies()).to_have_count(0)  # no empty reply left behind
    chat.page.get_by_role("button", name="Dismiss error").click()
    expect(banner).to_be_hidden()
    chat.assert_no_console_errors(expected=r"status of 400")


def test_a_network_error_shows_in_the_banner(chat):
    chat.page.route("**/v1/chat/completions", lambda route: route.abort())
    chat.send("Hello")
    banner = chat.page.get_by_role("alert")
    expect(banner).to_contain_text("Network error", timeout=WAIT_MS)
    expect(chat.replies()).to_have_count(0)
    expect(chat.page.get_by_role("button", name="Send")).to_be_enabled()

    chat.page.unroute("**/v1/chat/completions")  # the network is back: Regenerate retries
    chat.page.get_by_role("button", name="Regenerate").click()
    expect(banner).to_be_hidden()
    chat.wait_until_done()
    expect(chat.replies()).to_have_count(1)
    expect(chat.page.locator(".message.user")).to_have_count(1)
    chat.assert_no_console_errors(expected=r"net::ERR_FAILED")


def test_markup_in_the_output_is_shown_as_text(chat, fake_only):
    markup = "<img src=x onerror=\"document.title='pwned'\"> and <b>bold</b>"
    chat.send("echo: " + markup)
    chat.wait_until_done()
    reply = chat.replies().last.locator(".content")
    expect(reply).to_have_text(markup)
    assert reply.locator("img, b").count() == 0
    assert chat.page.title() == "scratchllm chat"
    chat.assert_no_console_errors()


SETTINGS = {
    "Temperature": "0.3",
    "Top-k (blank: off)": "5",
    "Top-p": "0.9",
    "Max tokens": "6",
    "Seed (blank: random)": "7",
    "System prompt": "Answer briefly.",
}


def fill_settings(page) -> None:
    page.get_by_role("button", name="Settings").click()
    for label, value in SETTINGS.items():
        page.get_by_label(label).fill(value)


def test_settings_persist_across_a_reload(chat):
    fill_settings(chat.page)
    chat.page.reload()
    chat.page.get_by_role("button", name="Settings").click()
    for label, value in SETTINGS.items():
        expect(chat.page.get_by_label(label)).to_have_value(value)
    chat.assert_no_console_errors()


def test_settings_are_sent_with_the_request(chat, fake_only):
    fill_settings(chat.page)
    chat.send("Hello")
    chat.wait_until_done()
    request = fake_only.requests[-1]
    assert request["temperature"] == 0.3
    assert request["top_k"] == 5
    assert request["top_p"] == 0.9
    assert request["max_tokens"] == 6
    assert request["seed"] == 7
    assert request["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert len(chat.last_reply_text().split()) == 6  # the fake honours max_tokens
    expect(chat.replies().last.locator(".stats")).to_contain_text("hit max tokens")
    chat.assert_no_console_errors()


def test_regenerate_replaces_the_last_answer_and_new_chat_clears(chat, fake_only):
    chat.send("Hello")
    chat.wait_until_done()
    chat.page.get_by_role("button", name="Regenerate").click()
    chat.wait_until_done()
    expect(chat.replies()).to_have_count(1)
    assert len(fake_only.requests) == 2
    assert fake_only.requests[1]["messages"] == fake_only.requests[0]["messages"]

    chat.page.get_by_role("button", name="New chat").click()
    expect(chat.page.locator(".message")).to_have_count(0)
    expect(chat.page.get_by_role("button", name="Regenerate")).to_be_disabled()
    chat.assert_no_console_errors()


def test_copy_puts_the_answer_on_the_clipboard(chat, fake_only):
    chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    chat.send("echo: copy me, please")
    chat.wait_until_done()
    chat.replies().last.get_by_role("button", name="Copy this answer").click()
    expect(chat.replies().last.locator(".copy")).to_have_text("Copied")
    assert chat.page.evaluate("navigator.clipboard.readText()") == "copy me, please"
    chat.assert_no_console_errors()


def test_screenshot_of_a_short_exchange(chat, tmp_path):
    chat.page.set_viewport_size({"width": 900, "height": 480})
    chat.send("What does a language model do?")
    chat.wait_until_done()
    path = tmp_path / "chat-page.png"
    chat.page.screenshot(path=path)
    assert path.read_bytes().startswith(b"\x89PNG")
    if UPDATE_SCREENSHOT:  # SCRATCHLLM_UPDATE_SCREENSHOT=1 rewrites docs/images/chat-page.png
        shutil.copyfile(path, SCREENSHOT)
    chat.assert_no_console_errors()
