"""Driving the look-inside page in a real browser: headless Chromium from Debian's ``chromium``
package through Selenium and Debian's ``chromium-driver`` (never a browser or driver a tool
downloads). Used by tests/test_serve_browser.py and by the screenshot script::

    python -m tests.serve_screenshot --checkpoint runs/pretrain --out docs/serve.png
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

CHROMIUM = Path(os.environ.get("GPT_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("GPT_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]


def missing() -> str | None:
    """Why the browser test cannot run here (None: it can)."""
    try:
        import selenium  # noqa: F401 -- only whether it is there
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            return f"{path} is missing (apt-get install {package})"
    return None


def open_chromium(user_data_dir: str | os.PathLike | None = None, width: int = 1280, height: int = 1000):
    """A headless Chromium WebDriver with a fresh profile that records the page's console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")     # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={user_data_dir or tempfile.mkdtemp(prefix='chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for(driver, condition, timeout: float = 60):
    """Wait until ``condition(driver)`` is truthy; return its value. An element the page replaced
    while it was being read (it re-renders as answers arrive) just means: look again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def set_text(driver, text: str) -> None:
    """Type ``text`` into the page's text box (replacing what is there)."""
    from selenium.webdriver.common.keys import Keys

    box = css(driver, "#text")[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def open_panel(driver, name: str) -> None:
    css(driver, f'#tabs [data-panel="{name}"]')[0].click()
    wait_for(driver, lambda d: css(d, f"#panel-{name}.active"))


def generate(driver, max_new_tokens: int, seed: int) -> list[int]:
    """Press Generate with these settings; return the ids of the generated tokens once done."""
    open_panel(driver, "generate")
    for field, value in (("max-new-tokens", max_new_tokens), ("seed", seed)):
        box = css(driver, f"#{field}")[0]
        box.clear()
        box.send_keys(str(value))
    driver.execute_script("delete document.getElementById('generate-output').dataset.done")
    css(driver, "#generate-button")[0].click()
    wait_for(driver, lambda d: css(d, '#generate-output[data-done="true"]'))
    return [int(t.get_attribute("data-id")) for t in css(driver, ".gen-tok")]


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
