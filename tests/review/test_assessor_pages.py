"""Experts, peers, training and blind calibration in headless Chromium, on the review pages
served from a loopback server over a test queue: a peer pair that agrees decides; one that
disagrees sends the submission to an expert; a peer never sees a high-stakes submission; a new
reviewer scores training items before live work; a blind calibration item updates figures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prescore.review.agreement import assessor_of, figures
from prescore.review.assessors import Plan, set_plan
from prescore.review.pages import app as review_app
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import set_reviewer
from prescore.review.tables import DECIDED, PENDING
from prescore.review.verdicts import Verdict
from tests.review.test_queue import EVERY_CRITERION_MET, VERDICT, review
from tests.review.test_review_page import CHROMEDRIVER, CHROMIUM, browser, wait_for

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver",
)
__all__ = ["browser"]  # the fixture, shared with the review page's tests

PASSWORD = "a long enough password"
EARNED = Verdict(EVERY_CRITERION_MET, "earned", "")
OTHER = Verdict({"planning": "Developing", "reflection": "1"}, "not_yet", "Plan the pauses.")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, ReviewQueue]]:
    """The review pages on a free loopback port, with an expert administrator and two peers."""
    import uvicorn
    from fastapi import FastAPI

    from prescore.serving.launch import free_port

    queue = ReviewQueue.at(tmp_path / "review.db")
    set_reviewer(queue, "eve", PASSWORD, ["wait-time"], kind="expert", admin=True)
    set_reviewer(queue, "pia", PASSWORD, ["wait-time"], kind="peer")
    set_reviewer(queue, "pat", PASSWORD, ["wait-time"], kind="peer")
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    root = FastAPI()
    root.mount(review_app.ROOT, page)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", queue
    server.should_exit = True
    thread.join(timeout=10)


def sign_in_as(browser: object, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.delete_all_cookies()  # whoever was signed in before
    browser.get(f"{url}/review/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD, Keys.ENTER)
    wait_for(browser, 'id="count"')


def waiting(browser: object) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    return browser.find_element(By.ID, "count").text


def record(browser: object, verdict: Verdict, then: str) -> None:
    """Fill the open submission's form with `verdict` by keyboard, record it, wait for `then`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    body = browser.find_element(By.TAG_NAME, "body")
    for fieldset in browser.find_elements(By.CSS_SELECTOR, "fieldset.criterion"):
        criterion = fieldset.get_attribute("data-criterion") or ""
        choices = fieldset.find_elements(By.CSS_SELECTOR, 'input[type="radio"]')
        values = [choice.get_attribute("value") for choice in choices]
        body.send_keys(str(values.index(verdict.levels[criterion]) + 1))  # then the next one
    body.send_keys("e" if verdict.decision == "earned" else "n")
    if verdict.feedback:
        body.send_keys("f")
        browser.switch_to.active_element.send_keys(verdict.feedback, Keys.ESCAPE)
    browser.find_element(By.TAG_NAME, "body").send_keys("s")
    wait_for(browser, then)


def open_top(browser: object) -> int:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.find_element(By.ID, "open-top").click()
    wait_for(browser, 'id="review"')
    return int(browser.current_url.rsplit("/", 1)[1])


def test_a_peer_pair_that_agrees_decides_the_submission(
    site: tuple[str, ReviewQueue], browser: object
) -> None:
    url, queue = site
    (entry_id,) = queue.enqueue([review(0)])
    sign_in_as(browser, url, "pia")
    assert waiting(browser) == "1 submission(s) waiting."
    assert open_top(browser) == entry_id
    record(browser, VERDICT, "a second peer reviews it too")
    sign_in_as(browser, url, "pia")
    assert waiting(browser) == "0 submission(s) waiting."  # one review per peer

    sign_in_as(browser, url, "pat")
    assert open_top(browser) == entry_id
    record(browser, VERDICT, "both peers agree, so it is decided")
    (decided,) = queue.decided()
    assert (decided.id, decided.status, decided.decided_decision) == (entry_id, DECIDED, "not_yet")
    assert [r.reviewer for r in queue.live_reviews(entry_id)] == ["pia", "pat"]


def test_a_peer_pair_that_disagrees_sends_it_to_an_expert(
    site: tuple[str, ReviewQueue], browser: object
) -> None:
    url, queue = site
    (entry_id,) = queue.enqueue([review(0)])
    sign_in_as(browser, url, "pia")
    open_top(browser)
    record(browser, VERDICT, "a second peer reviews it too")
    sign_in_as(browser, url, "pat")
    open_top(browser)
    record(browser, OTHER, "the peers disagree, so an expert decides it")
    entry = queue.get(entry_id, ["wait-time"])
    assert entry is not None and entry.status == PENDING
    sign_in_as(browser, url, "pat")
    assert waiting(browser) == "0 submission(s) waiting."

    sign_in_as(browser, url, "eve")
    assert waiting(browser) == "1 submission(s) waiting."
    assert open_top(browser) == entry_id
    record(browser, EARNED, f"Recorded Earned for submission #{entry_id}.")
    (decided,) = queue.decided()
    assert (decided.decided_by, decided.decided_decision) == ("eve", "earned")
    kinds = [(s.rater_id, s.rater_kind) for s in queue.reviewed_items()[0].scores]
    assert kinds == [("pia", "peer"), ("pat", "peer"), ("eve", "expert")]


def test_a_high_stakes_submission_never_appears_to_a_peer(
    site: tuple[str, ReviewQueue], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, queue = site
    (high,) = queue.enqueue([review(0, stakes="high")])
    (low,) = queue.enqueue([review(1)])
    sign_in_as(browser, url, "pia")
    assert waiting(browser) == "1 submission(s) waiting."
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "td a")}
    assert links == {f"{url}/review/submission/{low}"}
    browser.get(f"{url}/review/submission/{high}")
    wait_for(browser, "High-stakes submissions are decided by experts only.")
    assert "Essay 0" not in browser.page_source

    sign_in_as(browser, url, "eve")
    assert waiting(browser) == "2 submission(s) waiting."
    assert open_top(browser) == high  # high stakes first, for experts


def test_a_new_reviewer_passes_training_items_before_seeing_live_work(
    site: tuple[str, ReviewQueue], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, queue = site
    adjudicated = queue.enqueue([review(100), review(101)])
    for entry_id, verdict in zip(adjudicated, (VERDICT, EARNED), strict=True):
        queue.decide(entry_id, verdict, "eve", ["wait-time"], 1, assessor_of(queue, "eve"))
    set_plan(queue, Plan("wait-time", training_items=2))
    (live,) = queue.enqueue([review(0)])
    set_reviewer(queue, "nia", PASSWORD, ["wait-time"], kind="peer")

    sign_in_as(browser, url, "nia")
    assert waiting(browser) == "0 submission(s) waiting."
    assert "Done: 0 of 2" in browser.find_element(By.ID, "training-wait-time").text
    browser.get(f"{url}/review/submission/{live}")
    wait_for(browser, "Score the training items of wait-time before its live submissions.")

    browser.get(f"{url}/review/")
    browser.find_element(By.ID, "start-training").click()
    wait_for(browser, "Training item 1 of 2")
    assert 'id="decided"' not in browser.page_source  # scored as if fresh
    record(browser, OTHER, 'id="training-result"')
    shown = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "td.adjudicated")]
    assert shown == list(VERDICT.levels.values())  # the adjudicated levels, after
    assert browser.find_element(By.ID, "adjudicated-decision").text == "Not yet"
    browser.find_element(By.ID, "next-training").click()
    wait_for(browser, "Training item 2 of 2")
    record(browser, EARNED, 'id="training-done"')
    browser.find_element(By.ID, "to-queue").click()
    wait_for(browser, 'id="count"')
    assert waiting(browser) == "1 submission(s) waiting."
    assert open_top(browser) == live


def test_a_blind_calibration_item_updates_the_reviewer_s_figures(
    site: tuple[str, ReviewQueue], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    url, queue = site
    set_reviewer(queue, "ed", PASSWORD, ["wait-time"], kind="expert")
    adjudicated = queue.enqueue([review(100), review(101)])
    for entry_id in adjudicated:
        queue.decide(entry_id, VERDICT, "eve", ["wait-time"], 1, assessor_of(queue, "eve"))
    set_plan(queue, Plan("wait-time", blind_rate=1.0))  # after every live verdict
    (live,) = queue.enqueue([review(0)])

    sign_in_as(browser, url, "ed")
    assert open_top(browser) == live
    record(browser, OTHER, f"Recorded Not yet for submission #{live}.")
    blind = int(browser.current_url.rsplit("/", 1)[1])  # the next submission opened by itself
    assert blind in adjudicated
    assert 'id="decided"' not in browser.page_source and 'id="training"' not in browser.page_source
    (before,) = figures(queue, "ed")
    assert before.calibration.submissions == 0
    record(browser, VERDICT, f"Recorded Not yet for submission #{blind}.")
    (after,) = figures(queue, "ed")
    assert (after.calibration.submissions, after.blind_items) == (1, 1)
    assert (after.calibration.exact, after.calibration.decision_agreement) == (1.0, 1.0)

    browser.get(f"{url}/review/admin")
    wait_for(browser, "The reviewers' report is for administrators.")  # ed is not one
    sign_in_as(browser, url, "eve")
    browser.find_element(By.ID, "admin").click()
    wait_for(browser, 'id="reviewers"')
    row = browser.find_element(By.ID, "row-ed-wait-time")
    assert row.find_element(By.CSS_SELECTOR, ".calibration-items").text == "1 (1)"
    assert row.find_element(By.CSS_SELECTOR, ".decision-agreement").text == "100%"
