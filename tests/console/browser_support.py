"""What the browser tests share: Debian's chromium driven headless through selenium, full-page
screenshots at a laptop and a phone size, and the console served by real gunicorn
(`mailstead console serve`, which runs gunicorn with webui/gunicorn.conf.py).

chromedriver is passed by path, so Selenium Manager never tries the network. Screenshots go
to $MAILSTEAD_TEST_ARTIFACTS, else ./var/test-artifacts/console/ in the checkout (ignored by
git); each test prints where.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from harness.debian import ensure_package
from harness.engine import free_port, wait_for_port
from harness.processes import stop_process

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS_ENV = "MAILSTEAD_TEST_ARTIFACTS"

# name: (CSS width, CSS height, mobile). The phone is an iPhone 12-16 sized viewport.
SIZES: dict[str, tuple[int, int, bool]] = {"laptop": (1366, 800, False),
                                           "phone": (390, 844, True)}
PAGE_TIMEOUT = 30.0
# chromedriver's inspector race (see `Browser._press_found`): a node it briefly cannot
# resolve, while the page is switched back from a screenshot's emulation or is changing.
NODE_LOST = "does not belong to the document"
# [the page's scroll width, the boxes inside it whose content is wider than they are]
OVERFLOW_SCRIPT = """
const wide = [];
for (const el of document.querySelectorAll('main *')) {
  const style = getComputedStyle(el);
  if (el.scrollWidth > el.clientWidth + 1 && ['auto', 'scroll'].includes(style.overflowX)) {
    wide.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
  }
}
return [document.documentElement.scrollWidth, wide];
"""


def artifact_dir(test_name: str) -> Path:
    """Where `test_name`'s screenshots go (made empty first, and printed)."""
    root = Path(os.environ.get(ARTIFACTS_ENV) or REPO / "var" / "test-artifacts" / "console")
    target = root / test_name
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.png"):
        old.unlink()
    print(f"\nscreenshots of {test_name}: {target}")
    return target


def ensure_browser() -> None:
    """Install Debian's chromium and chromium-driver when missing (tests never skip)."""
    ensure_package(CHROMIUM, "chromium")
    ensure_package(CHROMEDRIVER, "chromium-driver")


def new_driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--lang=en-US", "--window-size=1366,800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    return driver


class Browser:
    """One headless chromium: page helpers and numbered screenshots of every step."""

    def __init__(self, artifacts: Path) -> None:
        ensure_browser()
        self.driver = new_driver()
        self.artifacts = artifacts
        self.shots: list[Path] = []
        self.clipped: list[str] = []
        try:
            self.size("laptop")
        except Exception:
            self.driver.quit()
            raise

    def close(self) -> None:
        self.driver.quit()

    # -- viewport and screenshots ----------------------------------------------------------

    def size(self, name: str) -> None:
        width, height, mobile = SIZES[name]
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def shoot(self, step: str, layout: str = "strict") -> None:
        """Full-page screenshots of the current page at every size, then back to laptop.

        Boxes that scroll sideways inside the page (wide tables in `.table-wrap`) are noted
        in `clipped` for the report. A page wider than the window fails the test with
        `layout="strict"`, is only noted with "note" (pages showing hostile long strings),
        and not looked at with "none" (pages that are not the console's)."""
        number = len(self.shots) // len(SIZES) + 1
        for name, (width, _height, _mobile) in SIZES.items():
            self.size(name)
            path = self.artifacts / f"{number:02d}-{step}-{name}.png"
            if layout != "none":
                self._check_layout(path.name, width, strict=layout == "strict")
            path.write_bytes(self._full_page())
            self.shots.append(path)
        self.size("laptop")

    def _check_layout(self, shot: str, width: int, strict: bool) -> None:
        page_width, wide = self.driver.execute_script(OVERFLOW_SCRIPT)
        if wide:
            self.clipped.append(f"{shot}: {', '.join(wide)} (a box scrolls sideways)")
        if page_width > width:
            assert not strict, f"{shot}: the page is {page_width}px wide in a {width}px window"
            self.clipped.append(f"{shot}: the page is {page_width}px wide in {width}px")

    def _full_page(self) -> bytes:
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": content["width"],
                "height": min(content["height"], 8000), "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True, "clip": clip})
        return base64.b64decode(shot["data"])

    # -- pages ---------------------------------------------------------------------------------

    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def source(self) -> str:
        return str(self.driver.page_source)

    def heading(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "h1").text)

    def field(self, name: str) -> WebElement:
        return self.driver.find_element(By.NAME, name)

    def type(self, name: str, value: str) -> None:
        element = self.field(name)
        element.clear()
        element.send_keys(value)

    def choose(self, name: str, value: str) -> None:
        Select(self.field(name)).select_by_value(value)

    def click(self, css: str) -> None:
        """Click the element `css` selects and wait for the next page to load."""
        self._press_found(lambda: self.driver.find_element(By.CSS_SELECTOR, css))

    def button(self, label: str) -> None:
        """Click the button whose visible text is `label` and wait for the next page."""
        def find() -> WebElement:
            found = [b for b in self.driver.find_elements(By.TAG_NAME, "button")
                     if b.text.strip() == label and b.is_displayed()]
            assert found, f"no button {label!r} on {self.url}:\n{self.text()}"
            return found[0]
        self._press_found(find)

    def _press_found(self, find: Callable[[], WebElement]) -> None:
        """Click `find()` and wait for the next page, finding again when chromedriver lost
        the node between the two (right after a screenshot's device emulation is switched
        back, chromedriver can answer "Node with given id does not belong to the document":
        a known race of its inspector, not a page change; the page is unchanged, so finding
        again is safe).

        Never twice for one call: chromedriver can also raise that error after it has
        clicked, once the click's navigation took the node away. The document the click
        was made on is then gone (its `html` element stale), and a second find would press
        the button of the same name on the next page (the wizard's time zone and TLS steps
        both have "Continue": a CI run once skipped the TLS step so)."""
        old: WebElement | None = None
        for attempt in range(3):
            old = None
            try:
                old = self.driver.find_element(By.TAG_NAME, "html")
                find().click()
                break
            except (StaleElementReferenceException, WebDriverException) as exc:
                if attempt == 2 or (not isinstance(exc, StaleElementReferenceException) and \
                        NODE_LOST not in str(exc)):
                    raise
                if old is not None and self._document_gone(old):
                    break                   # the click went through: its page is loading
                time.sleep(0.2)
        assert old is not None              # the loop ends by a break or a raise
        self._wait_for_new_page(old)

    def _document_gone(self, old: WebElement) -> bool:
        """Whether the document whose `html` element is `old` has been replaced, as
        selenium's `staleness_of` asks, but asking again (up to `PAGE_TIMEOUT`) while
        chromedriver answers with its inspector race (`NODE_LOST`) instead of yes or no:
        it does so for the old page's node while a click's navigation is under way."""
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            try:
                old.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:
                if NODE_LOST not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def _wait_for_new_page(self, old: WebElement) -> None:
        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT).until(lambda _d: self._document_gone(old))
            WebDriverWait(self.driver, PAGE_TIMEOUT).until(
                lambda d: d.execute_script("return document.readyState") == "complete")
        except TimeoutException:
            raise AssertionError(f"no new page after the click on {self.url}") from None

    def flashes(self) -> list[str]:
        return [str(e.text) for e in self.driver.find_elements(By.CSS_SELECTOR, ".flash")]

    def console_log(self) -> list[dict[str, Any]]:
        """The browser's console messages since the last call (CSP reports land here)."""
        return list(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]


@contextmanager
def browser(test_name: str) -> Iterator[Browser]:
    """A Browser saving to `test_name`'s artifact directory; at the end it prints the
    layout notes (content hidden until scrolled sideways)."""
    found = Browser(artifact_dir(test_name))
    try:
        yield found
    finally:
        found.close()
        for line in found.clipped:
            print(f"layout: {line}")


class ConsoleServer:
    """`mailstead --config CONFIG console serve --bind 127.0.0.1:PORT` in its own session."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance", "--config", str(self.config), "console",
                 "serve", "--bind", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for_port(self.port, 30, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> ConsoleServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def setup_code(config: Path) -> str:
    """The setup code as `./build.sh run` shows it: `mailstead console setup-code`."""
    done = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config),
                           "console", "setup-code"], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip()
