"""The web app in a real headless Chromium, served by the real `ivr serve`."""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import unavailable
from tests.support.service import ServiceProcess

PASSWORD = "a long enough password"


def chromium() -> webdriver.Chrome:
    """A headless Chromium with a throwaway profile (removed when it quits)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        unavailable("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    quit_browser = browser.quit

    def quit() -> None:
        quit_browser()
        shutil.rmtree(profile, ignore_errors=True)

    browser.quit = quit  # type: ignore[method-assign]
    return browser


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chrome = chromium()
    yield chrome
    chrome.quit()


def wait(browser: webdriver.Chrome) -> WebDriverWait:
    """Clicks return before the next page has loaded: wait for what the test expects."""
    return WebDriverWait(browser, 10)


def log_in(browser: webdriver.Chrome, url: str, username: str, password: str) -> None:
    """Through the login form; returns once the page it leads to has its nav bar."""
    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda b: b.find_elements(By.ID, "nav"))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def status_of(url: str, data: bytes | None = None) -> tuple[int, str]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, data=data, timeout=10) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


def test_pages_need_a_login_and_posts_need_a_csrf_token(ivr_service: ServiceProcess) -> None:
    assert status_of(ivr_service.web_url) == (302, "/login?next=/")
    assert status_of(ivr_service.web_url + "login")[0] == 200
    code, _ = status_of(ivr_service.web_url + "login", data=b"username=x&password=y")
    assert code == 400  # no CSRF token


def test_login_shows_the_service_health_then_logout(
    ivr_service: ServiceProcess, browser: webdriver.Chrome
) -> None:
    added = ivr_service.ivr(
        "user", "add", "ops1", "--role", "ops", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    browser.get(ivr_service.web_url)
    assert browser.current_url.endswith("/login?next=/")

    browser.find_element(By.NAME, "username").send_keys("ops1")
    browser.find_element(By.NAME, "password").send_keys("wrong password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait(browser).until(lambda b: b.find_elements(By.CLASS_NAME, "error"))
    assert error[0].text == "Unknown user or wrong password."

    name = browser.find_element(By.NAME, "username")
    name.clear()
    name.send_keys("ops1")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#health tr td"))
    rows = {
        r.find_elements(By.TAG_NAME, "td")[0].text: r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "#health tr")[1:]
    }
    assert rows["fastagi"].startswith("fastagi ok")
    assert rows["ami"].startswith("ami ok")  # logged in to the sandbox's AMI
    assert "ops1 (ops)" in browser.page_source

    browser.find_element(By.XPATH, "//button[text()='Log out']").click()
    wait(browser).until(lambda b: b.current_url.endswith("/login"))
    browser.get(ivr_service.web_url)
    assert browser.current_url.endswith("/login?next=/")
