"""The reviewer page end to end in headless Chromium: sign in, open the top item, record a
level, see the queue advance, export, and find the decision in the exported file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.serving.client import ScoringClient
from prescore.serving.queue import ReviewQueue
from prescore.serving.reviewers import set_reviewer
from tests.conftest import evidence_row
from tests.serving.conftest import Registry, running_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver",
)
KEY = "review-test-key-51c0"


@pytest.fixture(scope="module")
def site(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("review")
    database = f"sqlite:///{folder / 'review.db'}"
    set_reviewer(ReviewQueue(database), "ana", "correct horse", ["wait-time"])
    settings = {
        "PRESCORE_API_KEYS": KEY,
        "PRESCORE_REVIEW_DB": database,
        "PRESCORE_AUDIT_RATE": "1.0",  # auto items are queued too: every item lands here
        "PRESCORE_SESSION_SECRET": "test-session-secret",
    }
    with running_service(registry, folder, settings) as (url, _):
        items = [
            {
                "submission_id": f"sub-{n}",
                "credential_id": "wait-time",
                "criterion_id": evidence_row(n)["criterion_id"],
                "evidence_type": "reflection",
                "text": evidence_row(n)["text"] + f" Reviewed item {n}.",
                "educator_id": f"educator-{n}",
                "consent_to_train": True,
            }
            for n in range(900, 904)
        ]
        reply = ScoringClient(url, KEY).score(items)
        assert reply.status == 200, reply.body
        # committed before the answer: another connection already sees every item
        assert len(ReviewQueue(database).pending(["wait-time"])) == len(items)
        yield url, database


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def wait_for(browser: object, text: str) -> None:
    """Until the page that a click started loading shows `text`."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(lambda driver: text in driver.page_source)


def test_a_reviewer_scores_the_top_item_and_it_reaches_the_export(
    site: tuple[str, str], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, database = site
    browser.get(f"{url}/review/")
    assert browser.current_url.endswith("/review/login")  # signing in comes first
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, "Name or password is wrong")
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("correct horse", Keys.ENTER)

    assert browser.find_element(By.ID, "count").text == "4 item(s) waiting."
    browser.find_element(By.ID, "open-top").click()
    assert "Reviewed item" in browser.find_element(By.ID, "evidence").text  # waits for the page
    top = browser.current_url.rsplit("/", 1)[1]
    assert "confidence" in browser.find_element(By.ID, "suggestion").text
    levels = browser.find_elements(By.CSS_SELECTOR, 'input[name="level"]')
    chosen = levels[1].get_attribute("value")
    browser.find_element(By.TAG_NAME, "body").send_keys("2")  # the keyboard picks level 2
    assert levels[1].is_selected()
    browser.find_element(By.ID, "record").click()

    wait_for(browser, f"Recorded {chosen} for item {top}.")
    assert browser.current_url.rsplit("/", 1)[1] != top  # the next item opened
    browser.get(f"{url}/review/")
    assert browser.find_element(By.ID, "count").text == "3 item(s) waiting."

    out = tmp_path / "reviews.jsonl"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--review-db", database])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["id"] == f"review-{top}" and record["final_level"] == chosen
    assert record["scores"][0]["rater_id"] == "ana" and record["consent_to_train"] is True


def test_the_page_refuses_a_decision_without_signing_in(site: tuple[str, str]) -> None:
    import urllib.request

    url, database = site
    target = ReviewQueue(database).pending(["wait-time"])[0].id
    request = urllib.request.Request(
        f"{url}/review/item/{target}", data=b"level=Proficient&version=1", method="POST"
    )
    with urllib.request.urlopen(request) as response:  # redirected to the sign-in page
        assert response.url.endswith("/review/login")
    assert target in {entry.id for entry in ReviewQueue(database).pending(["wait-time"])}
