"""The playground page in headless Chromium against a real `genlab serve` app on loopback.

The server runs a tiny random model with two LoRA adapters (``alpha``, ``beta``) behind an API key.
Answers are greedy (temperature 0), so the text the page assembles from the stream can be checked
against the server's own non-streamed answer to the same messages: equal text means every delta was
shown, in order, and equal answers on a second turn mean the page sent the conversation history.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from test_serve_support import make_tiny_assets, running_server

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend
from tests.browser import chromium_browser, open_page

KEY = "playground-key-1"
MAX_TOKENS_LIMIT = 480  # the server's cap; the page's slider goes higher, which gives a real API error
LONG_ANSWER = 450  # tokens: the tiny model's window is 512, and at this length a stream is still going when stopped
SYSTEM = "You are a terse assistant."
EXPECTED_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of 40[01]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    assets = make_tiny_assets(tmp_path_factory.mktemp("playground-assets"))
    adapters = {"alpha": str(assets.adapters["alpha"]), "beta": str(assets.adapters["beta"])}
    config = ServeConfig(
        model="tiny", adapters=adapters, api_key=KEY, embedder="hashing-32", max_tokens_limit=MAX_TOKENS_LIMIT,
        jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", record_lineage=False,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), adapters, max_batch=4, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as browser:
        yield browser


def reference_answer(server: str, model: str, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, int]:
    """The server's non-streamed greedy answer and its completion-token count."""
    response = httpx.post(
        server + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
        timeout=60,
    )
    response.raise_for_status()
    body = response.json()
    return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]


def text_of(page: Page, selector: str) -> str:
    """An element's exact text (inner_text would normalise whitespace the model produced)."""
    return page.locator(selector).evaluate("element => element.textContent")


def count_text_changes(page: Page, selector: str) -> None:
    """Count, in the page, every change to the text inside ``selector`` (read with ``text_changes``)."""
    page.locator(selector).evaluate(
        """element => {
            window.textChanges = 0;
            new MutationObserver((records) => { window.textChanges += records.length; })
                .observe(element, { childList: true, characterData: true, subtree: true });
        }"""
    )


def watch_both_streaming(page: Page) -> None:
    """Set ``window.bothStreaming`` once both compare columns are receiving a stream at the same moment."""
    page.evaluate(
        """() => {
            window.bothStreaming = false;
            const a = document.getElementById("column-a"), b = document.getElementById("column-b");
            new MutationObserver(() => {
                if (a.classList.contains("streaming") && b.classList.contains("streaming")) window.bothStreaming = true;
            }).observe(a.parentElement, { attributes: true, attributeFilter: ["class"], subtree: true });
        }"""
    )


def click_stop_on_first_text(page: Page) -> None:
    """Click Stop from inside the page as soon as the answer shows text (a click from the test would come
    a browser round trip later, when a tiny model may have finished)."""
    page.evaluate(
        """() => {
            const log = document.getElementById("chat-log");
            const observer = new MutationObserver(() => {
                const answer = log.querySelector(".message.assistant .content");
                if (answer && answer.textContent.length > 0) { observer.disconnect(); document.getElementById("stop-button").click(); }
            });
            observer.observe(log, { childList: true, characterData: true, subtree: true });
        }"""
    )


def unexpected_errors(errors: list[str]) -> list[str]:
    """Page errors other than the browser's note about the 401/400 responses the test provokes."""
    return [error for error in errors if not EXPECTED_CONSOLE.search(error)]


def log_in(page: Page) -> None:
    """Without a key the model list fails with the server's 401; with it the list fills."""
    expect(page.get_by_test_id("models-status")).to_contain_text("401")
    page.fill("#api-key", KEY)
    page.press("#api-key", "Tab")  # the key is saved and used when the field is left
    expect(page.locator("#model-select option")).to_have_count(3)


def test_chat_streams_keeps_history_and_compare_runs_two_streams(server, browser, tmp_path: Path) -> None:
    with open_page(server + "/", browser=browser) as session:
        page = session.page
        log_in(page)
        assert page.locator("#model-select option").evaluate_all("options => options.map(o => o.value)") == [
            "tiny", "alpha", "beta",  # the embedder is listed by the server but cannot chat
        ]  # fmt: skip
        assert page.evaluate("localStorage.getItem('genlab.playground.apiKey')") == KEY

        page.fill("#system-prompt", SYSTEM)
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "24")
        expect(page.locator("#temperature-value")).to_have_text("0")  # the sliders show their values
        expect(page.locator("#max-tokens-value")).to_have_text("24")

        # first turn, sent with Enter
        count_text_changes(page, "#chat-log")
        page.fill("#chat-input", "Hello, can you help me?")
        page.press("#chat-input", "Enter")
        first_stats = page.get_by_test_id("message-stats").nth(0)
        expect(first_stats).to_contain_text("tokens/s")
        first = text_of(page, "[data-testid=message-assistant] >> nth=0 >> .content")
        turn1 = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello, can you help me?"}]
        expected, tokens = reference_answer(server, "tiny", turn1, 24)
        assert first == expected and first.strip()
        expect(first_stats).to_contain_text(f"{tokens} tokens in")  # the server's usage count
        assert page.evaluate("window.textChanges") > tokens // 2  # shown piece by piece, not in one go

        # second turn, with the button: the answer is the one for the whole conversation
        page.fill("#chat-input", "And then?")
        page.click("#send-button")
        expect(page.get_by_test_id("message-stats").nth(1)).to_contain_text("tokens/s")
        second = text_of(page, "[data-testid=message-assistant] >> nth=1 >> .content")
        turn2 = [*turn1, {"role": "assistant", "content": first}, {"role": "user", "content": "And then?"}]
        assert second == reference_answer(server, "tiny", turn2, 24)[0]
        session.screenshot(tmp_path / "playground-chat.png")

        # compare: two adapters on one prompt, both requests in flight at once
        page.click("#tab-compare")
        page.select_option("#compare-model-a", "alpha")
        page.select_option("#compare-model-b", "beta")
        watch_both_streaming(page)
        page.fill("#compare-input", "Where is my parcel?")
        page.press("#compare-input", "Enter")
        for side in ("a", "b"):
            expect(page.get_by_test_id(f"compare-stats-{side}")).to_contain_text("latency")
            expect(page.get_by_test_id(f"compare-stats-{side}")).to_contain_text("tokens/s")
        prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is my parcel?"}]
        left, right = text_of(page, "#compare-output-a"), text_of(page, "#compare-output-b")
        assert left == reference_answer(server, "alpha", prompt, 24)[0]
        assert right == reference_answer(server, "beta", prompt, 24)[0]
        assert left != right  # the adapters answer differently, so each column shows its own model
        expect(page.get_by_test_id("compare-title-a")).to_have_text("alpha")
        assert page.evaluate("window.bothStreaming")  # the two streams ran at the same time
        session.screenshot(tmp_path / "playground-compare.png")
        assert unexpected_errors(session.errors) == []


def test_api_errors_are_shown_and_the_message_can_be_sent_again(server, browser) -> None:
    with open_page(server + "/", browser=browser) as session:
        page = session.page
        log_in(page)
        page.fill("#max-tokens", "1024")  # above the server's limit: a 400 in OpenAI's error shape
        page.fill("#chat-input", "Tell me a story.")
        page.press("#chat-input", "Enter")
        error = page.get_by_test_id("chat-error")
        expect(error).to_contain_text("400")
        expect(error).to_contain_text("max_tokens")
        expect(page.locator(".message.assistant.failed")).to_have_count(1)
        expect(page.locator("#chat-input")).to_have_value("Tell me a story.")  # given back for a retry
        expect(page.locator("#send-button")).to_be_enabled()

        page.fill("#max-tokens", "8")
        page.press("#chat-input", "Enter")
        expect(page.get_by_test_id("message-stats").last).to_contain_text("tokens/s")
        expect(error).to_be_empty()
        assert unexpected_errors(session.errors) == []


def test_stop_ends_the_stream_and_keeps_what_came(server, browser) -> None:
    story = "Tell me a long story about a parcel."
    full, tokens = reference_answer(server, "tiny", [{"role": "user", "content": story}], LONG_ANSWER)
    assert tokens == LONG_ANSWER  # the model does not end it early, so there is a stream left to stop
    with open_page(server + "/", browser=browser) as session:
        page = session.page
        log_in(page)
        page.fill("#temperature", "0")
        page.fill("#max-tokens", str(LONG_ANSWER))
        page.fill("#chat-input", story)
        click_stop_on_first_text(page)
        page.press("#chat-input", "Enter")
        content = page.locator("[data-testid=message-assistant] .content")
        stats = page.get_by_test_id("message-stats")
        expect(stats).to_contain_text("stopped")
        shown = content.evaluate("element => element.textContent")
        assert 0 < len(shown) < len(full) and full.startswith(shown)  # a prefix of the answer, then nothing
        expect(page.locator("#stop-button")).to_be_disabled()

        page.fill("#max-tokens", "8")  # the server is free again, and the stopped turn is in the history
        page.fill("#chat-input", "Shorter, please.")
        page.press("#chat-input", "Enter")
        expect(stats.nth(1)).to_contain_text("tokens/s")
        turns = [{"role": "user", "content": story}, {"role": "assistant", "content": shown}, {"role": "user", "content": "Shorter, please."}]
        second = page.locator("[data-testid=message-assistant] >> nth=1 >> .content").evaluate("element => element.textContent")
        assert second == reference_answer(server, "tiny", turns, 8)[0]
        assert unexpected_errors(session.errors) == []


def test_the_key_is_remembered_and_narrow_screens_stack_the_columns(server, browser, tmp_path: Path) -> None:
    with open_page(server + "/", browser=browser, width=390, height=844) as session:
        page = session.page
        log_in(page)
        page.reload()  # the key comes back from local storage: no 401 this time
        expect(page.locator("#model-select option")).to_have_count(3)
        expect(page.locator("#api-key")).to_have_value(KEY)
        expect(page.locator("#settings")).to_have_js_property("open", False)  # folded to leave room for the chat
        expect(page.locator("#settings-summary")).to_contain_text("tiny")
        page.click("#tab-compare")
        left = page.locator("#column-a").bounding_box()
        right = page.locator("#column-b").bounding_box()
        assert left and right and right["y"] >= left["y"] + left["height"]  # one above the other
        assert left["width"] <= 390
        session.screenshot(tmp_path / "playground-narrow.png")
        assert unexpected_errors(session.errors) == []


@pytest.mark.parametrize(("in_ci", "outcome"), [(True, pytest.fail.Exception), (False, pytest.skip.Exception)])
def test_a_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch, in_ci, outcome) -> None:
    import tests.browser

    monkeypatch.setattr(tests.browser, "IN_CI", in_ci)
    monkeypatch.setattr(tests.browser.shutil, "which", lambda name: None)
    with pytest.raises(outcome, match="make setup-browser"):
        tests.browser.chromium_executable()
