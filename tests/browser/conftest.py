"""Real-browser tests: Debian's chromium, headless, driven by Selenium against pytest-django's live_server.

Skipped (with the reason) when /usr/bin/chromium or /usr/bin/chromedriver is
missing: install them with `apt-get install chromium chromium-driver`.
Selenium Manager never downloads anything: the driver and the browser are
given by path, and SE_OFFLINE is set.
"""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
WAIT_SECONDS = 15  # bound of every explicit wait
WINDOW = (1280, 900)


def _missing() -> str:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} not found: apt-get install chromium chromium-driver (Debian) to run the browser tests"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed in this environment"
    return ""


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if not reason:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_BROWSER_DOWNLOAD", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Admin:
    """Small page helpers with bounded explicit waits (no sleeps)."""

    def __init__(self, driver, base_url):
        self.driver, self.base = driver, base_url

    def wait(self, condition, seconds: float = WAIT_SECONDS):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, seconds).until(condition)

    def visible(self, css: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def open(self, path: str, ready_css: str = "#content"):
        self.driver.get(self.base + path)
        return self.visible(ready_css)

    def click(self, css: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        element = self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        element.click()
        return element

    def submit_and_wait(self, css: str, ready_css: str):
        """Click a submit button and wait until the next page (the old one gone, `ready_css` visible)."""
        from selenium.webdriver.support import expected_conditions as EC

        old = self.driver.find_element("css selector", "html")
        self.click(css)
        self.wait(EC.staleness_of(old))
        return self.visible(ready_css)

    def login(self, username: str, password: str):
        self.open("/admin/login/", "#id_username")
        self.driver.find_element("css selector", "#id_username").send_keys(username)
        self.driver.find_element("css selector", "#id_password").send_keys(password)
        self.submit_and_wait("input[type=submit]", "#content")

    def messages(self) -> str:
        return " ".join(e.text for e in self.driver.find_elements("css selector", "ul.messagelist li"))

    def screenshot(self, path):
        # The viewport itself 1280x900 (a headless window's size includes no chrome, but be exact).
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
        self.driver.save_screenshot(str(path))


@pytest.fixture
def admin_ui(browser, live_server):
    return Admin(browser, live_server.url)


@pytest.fixture(autouse=True)
def default_field_rules(transactional_db):
    """Transactional tests flush the tables after each test, including the default field rules that
    canonical's data migration created: put them back so every browser test starts from the same rules."""
    from canonical.defaults import DEFAULT_RULES
    from canonical.models import SourcePriorityRule

    for field, (strategy, sources) in DEFAULT_RULES.items():
        SourcePriorityRule.objects.get_or_create(field=field, defaults={"strategy": strategy, "sources": sources})
