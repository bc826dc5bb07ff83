"""The reviewer page end to end in headless Chromium: sign in, open the top submission, pick
levels with keys, record the decision with feedback, see the next submission open; audits are
marked; a forged form and another credential's submission are refused; and the decision
reaches the export."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import set_reviewer
from prescore.serving.client import ScoringClient
from tests.conftest import evidence_row
from tests.review.test_queue import review
from tests.serving.conftest import MODEL, Registry, running_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver: "
        "apt-get install chromium chromium-driver",
    ),
]
KEY = "review-test-key-51c0"
FEEDBACK = "Name the questions you paused after and what the students then said."


def items_of(n: int, shared: bool) -> list[dict[str, object]]:
    """One submission: both criteria of wait-time, on one essay or on a text each."""
    essay = evidence_row(n)["text"] + f" Reviewed essay {n}."
    return [
        {
            "submission_id": f"sub-{n}",
            "credential_id": "wait-time",
            "criterion_id": criterion,
            "evidence_type": "reflection",
            "text": essay if shared else f"{criterion}: " + evidence_row(n + k)["text"],
            "educator_id": f"educator-{n}",
            "consent_to_train": True,
        }
        for k, criterion in enumerate(("planning", "reflection"))
    ]


@pytest.fixture(scope="module")
def site(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("review")
    database = f"sqlite:///{folder / 'review.db'}"
    queue = ReviewQueue(database)
    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    settings = {
        "PRESCORE_API_KEYS": KEY,
        "PRESCORE_REVIEW_DB": database,
        "PRESCORE_AUDIT_RATE": "1.0",  # auto decisions are queued too: every submission lands
        "PRESCORE_SESSION_SECRET": "test-session-secret",
    }
    with running_service(registry, folder, settings) as (url, _):
        items = items_of(900, shared=True) + items_of(902, shared=False)
        reply = ScoringClient(url, KEY).score(items)
        assert reply.status == 200, reply.body
        # committed before the answer: another connection already sees every submission
        assert queue.count_pending(["wait-time"]) == 2
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


def sign_in(browser: object, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(f"{url}/review/")
    assert browser.current_url.endswith("/review/login")  # signing in comes first
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, "Name or password is wrong")
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("correct horse", Keys.ENTER)
    wait_for(browser, 'id="count"')


def test_a_reviewer_decides_the_top_submission_by_keyboard_and_it_reaches_the_export(
    site: tuple[str, str],
    browser: object,
    tmp_path: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, database = site
    sign_in(browser, url)
    assert browser.find_element(By.ID, "count").text == "2 submission(s) waiting."
    browser.find_element(By.ID, "open-top").click()
    wait_for(browser, 'id="keys"')
    top = int(browser.current_url.rsplit("/", 1)[1])
    assert "confidence" in browser.find_element(By.ID, "suggestion").text
    criteria = browser.find_elements(By.CSS_SELECTOR, "fieldset.criterion")
    assert len(criteria) == 2 and "current" in (criteria[0].get_attribute("class") or "")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("3")  # planning: level 3; the next criterion lights up
    assert "current" in (criteria[1].get_attribute("class") or "")
    body.send_keys("2")  # reflection: level 2
    picked = [
        fieldset.find_elements(By.CSS_SELECTOR, 'input[type="radio"]')[k]
        for fieldset, k in zip(criteria, (2, 1), strict=True)
    ]
    assert all(choice.is_selected() for choice in picked)
    chosen = [choice.get_attribute("value") for choice in picked]
    body.send_keys("n")  # not yet
    assert browser.find_element(By.ID, "decision-not_yet").is_selected()
    body.send_keys("f")  # into the feedback box; Esc leaves it, S records
    browser.switch_to.active_element.send_keys(FEEDBACK, Keys.ESCAPE)
    assert browser.find_element(By.ID, "feedback").get_attribute("value") == FEEDBACK
    browser.find_element(By.TAG_NAME, "body").send_keys("s")

    wait_for(browser, f"Recorded Not yet for submission #{top}.")
    assert int(browser.current_url.rsplit("/", 1)[1]) != top  # the next submission opened
    (decided,) = ReviewQueue(database).decided()
    assert (decided.id, decided.decided_decision, decided.feedback) == (top, "not_yet", FEEDBACK)
    assert [item.decided_level for item in decided.items] == chosen
    browser.get(f"{url}/review/")
    assert browser.find_element(By.ID, "count").text == "1 submission(s) waiting."

    out = tmp_path / "reviews.jsonl"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--review-db", database])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["final_level"] for r in records] == chosen
    assert {r["reviewer_decision"] for r in records} == {"not_yet"}
    assert records[0]["scores"][0]["rater_id"] == "ana" and records[0]["consent_to_train"]
    assert (tmp_path / "rubrics" / "wait-time.yaml").is_file()


def test_an_audit_is_marked_a_forged_form_and_another_credential_are_refused(
    site: tuple[str, str], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, database = site
    # an audited auto decision and another credential's submission, as the service queues them
    (audit,) = ReviewQueue(database).enqueue([review(1, audit=True, model_name=MODEL)])
    (theirs,) = ReviewQueue(database).enqueue([review(2, credential="feedback")])
    ids = {"audit": audit, "theirs": theirs}
    sign_in(browser, url)
    audit_row = browser.find_element(By.XPATH, f'//td/a[@href="/review/submission/{audit}"]')
    row = audit_row.find_element(By.XPATH, "./ancestor::tr")
    assert row.find_element(By.CSS_SELECTOR, "strong.audit").text == "audit"
    audit_row.click()
    wait_for(browser, 'id="keys"')
    assert "Audit sample" in browser.find_element(By.ID, "audit").text

    # a form whose CSRF token is not the session's is refused and changes nothing
    browser.execute_script('document.querySelector("#review input[name=csrf]").value = "forged"')
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("3", "3", "e", "s")
    wait_for(browser, "The form expired")
    entry = ReviewQueue(database).get(ids["audit"], ["wait-time"])
    assert entry is not None and entry.status == "pending"

    browser.get(f"{url}/review/submission/{ids['theirs']}")
    wait_for(browser, "not in your credentials")
    assert "Essay 2" not in browser.page_source


def test_the_page_refuses_a_decision_without_signing_in(
    site: tuple[str, str],
) -> None:
    import urllib.request

    url, database = site
    target = ReviewQueue(database).pending(["wait-time"])[0].id
    data = b"level%3Aplanning=Proficient&level%3Areflection=1&decision=earned&version=1"
    request = urllib.request.Request(f"{url}/review/submission/{target}", data=data, method="POST")
    with urllib.request.urlopen(request) as response:  # redirected to the sign-in page
        assert response.url.endswith("/review/login")
    assert target in {entry.id for entry in ReviewQueue(database).pending(["wait-time"])}
