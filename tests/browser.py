"""Opens a page from disk in headless Chromium (Selenium + chromedriver) and reports what it drew."""

import dataclasses
import io
import shutil

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)")

_IMAGES = "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
_BROKEN_ANCHORS = ("return Array.from(document.querySelectorAll('a[href^=\"#\"]')).map(a => a.getAttribute('href'))"
                   ".filter(h => !document.getElementById(h.slice(1)));")
_REQUESTS = "return performance.getEntriesByType('resource').map(r => r.name);"


@dataclasses.dataclass
class Rendered:
    errors: list          # console messages of level SEVERE
    images: list          # [complete, naturalWidth, naturalHeight] per <img>
    broken_anchors: list  # in-page links (#id) with no element of that id
    requests: list        # resources fetched (a self-contained page fetches none)
    screenshot: np.ndarray

    def blank(self):
        """Whether the screenshot is one flat colour."""
        return float(self.screenshot.std()) < 1.0


def render(page):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(_IMAGES)
        anchors = driver.execute_script(_BROKEN_ANCHORS)
        requests = [r for r in driver.execute_script(_REQUESTS) if not r.startswith("data:")]
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        screenshot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L"), np.float32)
    finally:
        driver.quit()
    return Rendered(errors, images, anchors, requests, screenshot)


def assert_renders(page):
    """The page loads from disk without console errors, fetches nothing, and draws every image."""
    rendered = render(page)
    assert not rendered.errors, rendered.errors
    assert not rendered.requests, f"the page fetched {rendered.requests}"
    assert not rendered.broken_anchors, rendered.broken_anchors
    assert rendered.images and all(done and width > 0 and height > 0 for done, width, height in rendered.images)
    assert not rendered.blank()
    return rendered
