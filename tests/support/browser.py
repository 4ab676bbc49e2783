"""A page opened in a real headless browser: the operating system's Chromium, driven by Playwright.

Playwright is only the driver: no browser is ever downloaded (CI installs Debian's ``chromium`` package). Every
request the page makes is recorded, and any that is not ``file:`` or ``data:`` is refused, so a page that
needs the network shows it as a failed request instead of quietly fetching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:")


@dataclass
class Visit:
    """What the browser saw of one page."""

    screenshot: bytes = b""
    """PNG of the whole page."""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """URL of every request the page made, local ones included."""
    images: list[bool] = field(default_factory=list)
    """Per ``<img>`` of the page, whether it loaded and decoded (``complete`` with a natural width)."""

    @property
    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


def visit(path: Path, width: int = 1280, height: int = 900) -> Visit:
    """Open ``path`` in headless Chromium, let it load, and record what happened."""
    from playwright.sync_api import Route, sync_playwright

    seen = Visit()

    def route(handler: Route) -> None:
        url = handler.request.url
        seen.requests.append(url)
        if url.startswith(LOCAL_SCHEMES):
            handler.continue_()
        else:
            handler.abort()

    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: message.type == "error" and seen.console_errors.append(message.text))
            page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
            page.goto(path.resolve().as_uri(), wait_until="load")
            seen.images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            seen.screenshot = page.screenshot(full_page=True)
        finally:
            browser.close()
    finally:
        driver.stop()
    return seen
