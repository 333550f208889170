"""The chat page against a real ``scratchllm serve`` (the fake server's tests are in
``test_chat_page.py``): a reply grows while it streams and ends with usage; Stop cancels the
sequence on the server (its /metrics count the cancellation and free the slot); an over-long
prompt shows the server's context_length_exceeded message; no console errors."""

from __future__ import annotations

import time

import pytest

from .conftest import WAIT_MS

pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
from playwright.sync_api import expect  # noqa: E402


def test_the_page_streams_a_reply_from_the_real_server(open_chat, slow_server):
    chat = open_chat(slow_server.url)
    expect(chat.page.locator("#model-name")).to_have_text("page-model")
    chat.send("Tell me a story.")
    content = chat.replies().last.locator(".content")
    expect(content).not_to_be_empty(timeout=WAIT_MS)
    first = len(chat.last_reply_text())
    time.sleep(0.4)
    assert len(chat.last_reply_text()) > first, "the reply did not grow while streaming"
    chat.wait_until_done()
    expect(chat.replies().last.locator(".stats")).to_contain_text("completion tokens")
    chat.assert_no_console_errors()


def test_stop_on_the_page_cancels_the_sequence_on_the_server(open_chat, slow_server):
    before = slow_server.metrics().get("scratchllm_cancellations_total", 0)
    chat = open_chat(slow_server.url)
    chat.send("Tell me a long story.")
    expect(chat.replies().last.locator(".content")).not_to_be_empty(timeout=WAIT_MS)
    chat.page.get_by_role("button", name="Stop").click()
    chat.wait_until_done()
    deadline = time.monotonic() + 10
    metrics = slow_server.metrics()
    while time.monotonic() < deadline:
        metrics = slow_server.metrics()
        if metrics.get("scratchllm_cancellations_total", 0) > before:
            break
        time.sleep(0.1)
    assert metrics["scratchllm_cancellations_total"] > before, "the server did not cancel"
    while metrics["scratchllm_active_sequences"] and time.monotonic() < deadline:
        time.sleep(0.1)
        metrics = slow_server.metrics()
    assert metrics["scratchllm_active_sequences"] == 0  # its slot is free
    chat.assert_no_console_errors()


def test_an_over_long_prompt_shows_the_servers_error(open_chat, slow_server):
    chat = open_chat(slow_server.url)
    chat.send("cat " * 2000)
    banner = chat.page.get_by_role("alert")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("maximum context length is 512 tokens")
    chat.assert_no_console_errors(expected=r"status of 400")
