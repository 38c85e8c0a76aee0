"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright's Python package.

No browser is downloaded: Playwright's bundled driver launches the system chromium (installed by
``make setup-browser``) through ``executable_path``, with ``--no-sandbox`` because tests may run as root
or in a container without user namespaces. A missing chromium fails the test in CI and skips it
elsewhere, with the command that installs it.

Usage::

    with open_page(url) as session:
        session.page.get_by_test_id("...")...
        session.screenshot(tmp_path / "page.png")
        assert session.errors == []
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import IN_CI

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage")  # /dev/shm is small in containers
DEFAULT_TIMEOUT_MS = 60_000  # a shared 2-core machine can be slow; a passing page answers in well under this


def _unavailable(reason: str) -> None:
    message = f"{reason}; run `make setup-browser` to install Debian's chromium for the page tests"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def chromium_executable() -> str:
    """The system chromium's path (fails in CI, skips elsewhere, when it is not installed)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("chromium is not on PATH")
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (it is in genlab's [test] extra)")
    return str(path)


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """One headless chromium for the duration of the block."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageSession:
    """An open page and what went wrong in it: uncaught exceptions and console errors, in order."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@contextmanager
def open_page(
    url: str | None = None,
    *,
    width: int = 1280,
    height: int = 900,
    browser: Browser | None = None,
) -> Iterator[PageSession]:
    """A fresh page (own context: no cookies or local storage shared) at ``url``, in ``browser`` or a new one."""
    if browser is None:
        with chromium_browser() as own:
            with open_page(url, width=width, height=height, browser=own) as session:
                yield session
        return
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)  # expect() has its own default (5 s)
    page = context.new_page()
    session = PageSession(page)
    page.on("pageerror", lambda error: session.errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: message.type == "error" and session.errors.append(f"console: {message.text}"))
    try:
        if url is not None:
            page.goto(url)
        yield session
    finally:
        context.close()
