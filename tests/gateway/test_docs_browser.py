"""/api/docs in a real headless browser (Debian's chromium driven through chromedriver).

The page must render every endpoint group (tag) of /api/openapi.json, and a person using it
must be able to log in with "Try it out" on POST /api/login and then call GET /api/products
from the page (the browser keeps the session cookie; the CSRF origin check accepts the page).

Without chromium or chromedriver the test is skipped, except under CI (env CI set), where that
is a failure: .ci/run installs both.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "chromedriver")
WAIT_SECONDS = 90  # a bound, not a delay: the page renders ~60 operations


def _find(candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
        raise  # not reached
    chromium = _find(CHROMIUM_CANDIDATES)
    driver_path = _find(DRIVER_CANDIDATES)
    if chromium is None or driver_path is None:
        _unavailable(
            "chromium and chromedriver are needed for the /api/docs browser test "
            "(apt-get install chromium chromium-driver)"
        )
    assert chromium is not None and driver_path is not None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager never looks for (or downloads) anything.
    service = Service(executable_path=driver_path, log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot_on_failure(driver: Any, path: Path) -> None:
    try:
        driver.save_screenshot(str(path))
    except Exception:  # noqa: BLE001 - diagnostics only
        return


def _wait(driver: Any, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def _try_operation(driver: Any, block_id: str, body: dict[str, Any] | None = None) -> str:
    """Open an operation, "Try it out", optionally type a JSON body, "Execute"; the status
    shown in the page's response panel."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    block = _wait(driver, ec.presence_of_element_located((By.ID, block_id)), block_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", block)
    if "is-open" not in (block.get_attribute("class") or ""):
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    try_out = _wait(
        driver,
        lambda d: block.find_element(By.CSS_SELECTOR, "button.try-out__btn"),
        f"'Try it out' of {block_id}",
    )
    try_out.click()
    if body is not None:
        editor = _wait(
            driver,
            lambda d: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text"),
            f"body editor of {block_id}",
        )
        editor.clear()
        editor.send_keys(json.dumps(body))
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status_cell = _wait(
        driver,
        lambda d: block.find_element(
            By.CSS_SELECTOR, ".live-responses-table tbody .response .response-col_status"
        ),
        f"response of {block_id}",
    )
    return str(status_cell.text.strip().split()[0])


def test_docs_page_renders_every_group_and_works_with_the_session(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    document = httpx.get(f"{stack.base_url}/api/openapi.json", timeout=30).json()
    tags = {tag["name"] for tag in document["tags"]}
    login_id = document["paths"]["/api/login"]["post"]["operationId"]
    products_id = document["paths"]["/api/products"]["get"]["operationId"]

    browser.get(f"{stack.base_url}/api/docs")
    try:
        _wait(
            browser,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "h3.opblock-tag")) >= len(tags),
            "endpoint groups rendered",
        )
        rendered = {
            element.get_attribute("data-tag")
            for element in browser.find_elements(By.CSS_SELECTOR, "h3.opblock-tag")
        }
        assert rendered == tags
        assert browser.find_elements(By.CSS_SELECTOR, ".opblock")  # operations listed

        status = _try_operation(
            browser,
            f"operations-session-{login_id}",
            {"username": "root", "password": stack.root_password},
        )
        assert status == "200"
        cookie = browser.get_cookie("session")
        assert cookie is not None and cookie["httpOnly"]

        assert _try_operation(browser, f"operations-products-{products_id}") == "200"
    except BaseException:
        _screenshot_on_failure(browser, tmp_path / "docs-page.png")
        raise
