"""The static site in a real headless Chromium: rows render, sorting works, injected script stays inert.

Needs Debian's chromium + chromium-driver (CI installs them); skipped locally when absent,
but in CI (CI=true) a missing browser is a failure.
"""

import os
import shutil

import pytest
from toy_plugins import ToySuite

from harness.leaderboard import build_leaderboards
from harness.store import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver for the browser test")
        pytest.skip("chromium / chromedriver not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_site_renders_sorts_and_stays_inert(browser, toy_registries, tmp_path, monkeypatch):
    from test_leaderboard import _rec

    monkeypatch.setattr(ToySuite, "description", "<script>window.pwned=1</script>")
    store = Store(tmp_path / "out")
    for label, value in [("alpha", 3.0), ("beta", 1.0), ("gamma<script>window.pwned2=1</script>", 2.0)]:
        store.put(_rec(label, value, stderr=0.01))
    build_leaderboards(store, tmp_path / "lb", toy_registries)
    from selenium.webdriver.common.by import By

    browser.get((tmp_path / "lb" / "site" / "toy_suite.html").as_uri())
    table = browser.find_element(By.ID, "board-toy_suite")
    labels = [row.find_elements(By.TAG_NAME, "td")[1].text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert labels == ["beta", "gamma<script>window.pwned2=1</script>", "alpha"]  # ranked, lower is better
    assert browser.execute_script("return window.pwned === undefined && window.pwned2 === undefined")
    assert "<script>window.pwned=1</script>" in browser.find_element(By.TAG_NAME, "body").text

    header = next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith("method"))
    header.click()
    labels = [row.find_elements(By.TAG_NAME, "td")[1].text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert labels == sorted(labels)
    score = next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith("toy_score"))
    score.click()
    score.click()  # descending
    values = [row.find_elements(By.TAG_NAME, "td")[5].get_attribute("data-sort")
              for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert [float(v) for v in values] == [3.0, 2.0, 1.0]
    shot = tmp_path / "lb" / "site_screenshot.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
