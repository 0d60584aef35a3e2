"""A real headless Chromium (Debian's chromium + chromedriver, driven by Selenium; no browser download)."""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Browser:
    """One browser session against one console."""

    def __init__(self, base_url: str, width: int = 1400, height: int = 1000) -> None:
        opts = Options()
        opts.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
        ):
            opts.add_argument(arg)
        self.base = base_url.rstrip("/")
        self.driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
        self.driver.implicitly_wait(0)
        self.visited: list[str] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.visited.append(path)

    def sign_in(self, token: str) -> None:
        self.open("/login")
        self.find("#token").send_keys(token)
        self.click("#sign-in", then="main")

    def click(self, css: str, then: str) -> None:
        """Click `css` and wait for the page it leads to: one that has `then`."""
        # A mark on the old document, not a reference to one of its nodes: while the page is being
        # replaced chromedriver can answer a node question with an inspector error ("Node with given
        # id does not belong to the document") instead of "stale", which failed a CI run.
        self.driver.execute_script("window.nbzxLeaving = true")
        self.find(css).click()
        wait = WebDriverWait(self.driver, 20, ignored_exceptions=(WebDriverException,))
        wait.until(lambda d: d.execute_script("return window.nbzxLeaving !== true"))
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, then)))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    @property
    def path(self) -> str:
        """The page shown now (after a click too), which is remembered as visited."""
        here = str(self.driver.current_url).removeprefix(self.base)
        self.visited.append(here)
        return here

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The whole page, not just the window: make the window as tall as the document first.
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(1400, max(600, min(height + 40, 4000)))
        self.driver.save_screenshot(str(path))

    def close(self) -> None:
        self.driver.quit()
