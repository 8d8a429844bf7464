"""The status page in a real headless browser (Debian's chromium, driven by Selenium through
chromedriver): it loads, shows a submitted job waiting in the queue and then succeeded, and
its subtitle link downloads the file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import words_of
from tests.service_helpers import running_server

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (scripts/bootstrap dev)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(tmp_path / "downloads"),
        "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def status_of(driver, job: str) -> str:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, f"#job-{job} .status").text)
    except NoSuchElementException:  # not listed yet
        return ""


def test_the_page_shows_a_job_go_from_queued_to_succeeded_and_its_subtitles_download(
        browser, tmp_path: Path, demo_run: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    films = tmp_path / "films"
    films.mkdir()
    for name in ("first.mp4", "second.mp4"):
        shutil.copyfile(demo_run["clip"], films / name)
    with running_server(tmp_path / "state", "--executor", "local", "--max-active", "1",
                        "--root", films, "--source-language", "en", "--set",
                        "asr.model=tiny.en", "--set", "asr.beam_size=1") as server:
        browser.get(server.url + "/")
        assert browser.find_element(By.TAG_NAME, "h1").text == "bolly-ray"
        jobs = [requests.post(server.url + "/jobs", json={"path": str(films / name)},
                              timeout=30).json()["id"] for name in ("first.mp4", "second.mp4")]
        seen: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not seen or seen[-1] != "succeeded"):
            status = status_of(browser, jobs[1])
            if status and (not seen or seen[-1] != status):
                seen.append(status)
            time.sleep(0.2)
        assert seen[0] == "queued" and seen[-1] == "succeeded", seen
        link = browser.find_element(By.CSS_SELECTOR, f"#job-{jobs[1]} a[href$='.en.srt']")
        link.click()
        downloaded = tmp_path / "downloads" / link.text
        deadline = time.monotonic() + 30
        while not downloaded.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert words_of(downloaded.read_text()) == words_of(demo_run["srt"].read_text())
        assert browser.find_element(By.CSS_SELECTOR, f"#job-{jobs[1]} a[href$='timeline.png']")
