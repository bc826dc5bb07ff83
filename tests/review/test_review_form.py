"""The submission page and its one form, without a browser: evidence shown once, every criterion
with its rubric, one decision with levels and feedback, 409 on a second, CSRF, assignment."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from prescore.review.pages import app as review_app
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import set_reviewer
from tests.review.test_queue import review


@pytest.fixture
def queue(review_db: str) -> ReviewQueue:
    """On SQLite and on Postgres."""
    queue = ReviewQueue(review_db)
    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    return queue


@pytest.fixture
def client(queue: ReviewQueue) -> TestClient:
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    client = TestClient(site)
    reply = sign_in(client, "ana", "correct horse")
    assert reply.status_code == 200
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str, **options: Any) -> httpx.Response:
    """Sign in as the form does: open it, then post it with its CSRF token."""
    token = csrf_of(client.get("/review/login").text)
    return client.post(
        "/review/login", data={"name": name, "password": password, "csrf": token}, **options
    )


def form(page: str, **fields: str) -> dict[str, str]:
    return {
        "csrf": csrf_of(page),
        "version": "1",
        "level:planning": "Proficient",
        "level:reflection": "1",
        "decision": "not_yet",
        "feedback": "Explain what the pause changed for your students.",
        **fields,
    }


def test_a_shared_text_is_shown_once_with_every_criterion_and_its_rubric(
    client: TestClient, queue: ReviewQueue
) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    page = client.get(f"/review/submission/{entry_id}").text
    assert page.count("Essay 0: I waited after each question.") == 1
    assert 'id="evidence-1"' in page and 'id="evidence-2"' not in page
    assert "Plans pauses after questions" in page and "Reflects on the effect" in page
    assert "every question" in page  # a level description from the rubric
    assert page.count('name="level:planning"') == 3 and page.count('name="level:reflection"') == 4
    assert re.search(
        r'id="suggested-1">Suggested <strong>Developing</strong>, confidence 60%', page
    )
    assert "Came to a human because: low_confidence" in page and 'id="audit"' not in page
    assert 'id="keys"' in page and "<kbd>S</kbd> records" in page


def test_different_texts_are_each_shown_beside_their_criterion(
    client: TestClient, queue: ReviewQueue
) -> None:
    (entry_id,) = queue.enqueue([review(0, shared_text=False)])
    page = client.get(f"/review/submission/{entry_id}").text
    planning = page[page.index('id="criterion-1"') : page.index('id="criterion-2"')]
    reflection = page[page.index('id="criterion-2"') : page.index('id="decision"')]
    assert 'id="evidence-1"' in planning and "Plan 0: pauses." in planning
    assert 'id="evidence-2"' in reflection and "Reflection 0: it helped." in reflection
    assert page.count("Plan 0: pauses.") == page.count("Reflection 0: it helped.") == 1


def test_each_distinct_text_is_shown_once_with_the_criteria_scored_on_it() -> None:
    from prescore.review.tables import ItemEntry

    def item(criterion: str, text: str, kind: str = "essay") -> ItemEntry:
        return ItemEntry(criterion_id=criterion, text=text, evidence_type=kind)

    items = [item("a", "one"), item("b", "two"), item("c", "one"), item("d", "one", "video")]
    from prescore.review.pages.render import evidence_shown

    shown = evidence_shown(items)
    assert [(e.number, e.text, e.criteria) for e in shown] == [
        (1, "one", ["a", "c"]),
        (2, "two", ["b"]),
        (3, "one", ["d"]),  # the same words as another kind of evidence are another piece
    ]


def test_one_form_records_levels_decision_and_feedback_then_the_next_opens(
    client: TestClient, queue: ReviewQueue
) -> None:
    first, second = queue.enqueue([review(0, confidence=0.2), review(1, confidence=0.9)])
    page = client.get(f"/review/submission/{first}").text
    reply = client.post(f"/review/submission/{first}", data=form(page))
    assert reply.status_code == 200 and reply.url.path == f"/review/submission/{second}"
    assert f"Recorded Not yet for submission #{first}." in reply.text
    (decided,) = queue.decided()
    assert (decided.decided_decision, decided.decided_by) == ("not_yet", "ana")
    assert decided.feedback == "Explain what the pause changed for your students."
    assert [i.decided_level for i in decided.items] == ["Proficient", "1"]
    again = client.post(f"/review/submission/{first}", data=form(page, decision="earned"))
    assert again.status_code == 409 and "was decided by ana" in again.text
    assert queue.decided()[0].decided_decision == "not_yet"


def test_an_incomplete_form_comes_back_with_what_is_missing_and_keeps_the_input(
    client: TestClient, queue: ReviewQueue
) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    page = client.get(f"/review/submission/{entry_id}").text
    fields = form(page, feedback="")
    del fields["level:reflection"]
    reply = client.post(f"/review/submission/{entry_id}", data=fields)
    assert reply.status_code == 400
    assert "pick a level for reflection" in reply.text and "what to strengthen" in reply.text
    assert re.search(r'value="Proficient" data-met="1" required\s+checked', reply.text)
    assert queue.count_pending(["wait-time"]) == 1


def test_a_form_without_its_csrf_token_is_refused(client: TestClient, queue: ReviewQueue) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    page = client.get(f"/review/submission/{entry_id}").text
    reply = client.post(f"/review/submission/{entry_id}", data=form(page, csrf="forged"))
    assert reply.status_code == 403 and "The form expired" in reply.text
    assert queue.count_pending(["wait-time"]) == 1


def test_another_credentials_submission_is_403_to_see_and_to_decide(
    client: TestClient, queue: ReviewQueue
) -> None:
    (mine,) = queue.enqueue([review(0)])
    (theirs,) = queue.enqueue([review(1, credential="feedback")])
    assert client.get(f"/review/submission/{theirs}").status_code == 403
    page = client.get(f"/review/submission/{mine}").text
    assert client.post(f"/review/submission/{theirs}", data=form(page)).status_code == 403
    assert "Essay 1" not in client.get(f"/review/submission/{theirs}").text
    assert "1 submission(s) waiting." in client.get("/review/").text
    assert queue.count_pending(["feedback"]) == 1


def test_audits_are_marked_in_the_queue_and_on_the_page(
    client: TestClient, queue: ReviewQueue
) -> None:
    human, audit = queue.enqueue([review(0), review(1, audit=True)])
    listing = client.get("/review/").text
    rows = re.findall(r'<tr>\s*<td><a href="/review/submission/(\d+)">(.*?)</tr>', listing, re.S)
    marked = {int(entry_id): 'class="audit"' in row for entry_id, row in rows}
    assert marked == {human: False, audit: True}
    page = client.get(f"/review/submission/{audit}").text
    assert 'id="audit"' in page and "In the queue as an audit sample" in page
    assert 'id="audit"' not in client.get(f"/review/submission/{human}").text


def test_signing_out_ends_every_copy_of_the_session(client: TestClient) -> None:
    stolen = dict(client.cookies)  # a copy of the signed cookie, as a thief would keep it
    page = client.get("/review/")
    assert page.status_code == 200 and "Review queue" in page.text
    client.post("/review/logout", data={"csrf": csrf_of(page.text)})
    replay = TestClient(client.app, cookies=stolen)
    assert replay.get("/review/", follow_redirects=False).status_code == 303  # to sign-in


def test_a_password_change_signs_the_reviewer_out(client: TestClient, queue: ReviewQueue) -> None:
    assert client.get("/review/", follow_redirects=False).status_code == 200
    set_reviewer(queue, "ana", "a brand new horse", ["wait-time"])
    assert client.get("/review/", follow_redirects=False).status_code == 303


def test_sign_in_is_throttled_per_name_and_address_and_the_pages_send_security_headers(
    queue: ReviewQueue,
) -> None:
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    guesser = TestClient(site)
    for attempt in range(5):
        assert sign_in(guesser, "ana", f"guess {attempt}").status_code == 401
    refused = sign_in(guesser, "ana", "correct horse")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    headers = guesser.get("/review/login").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_a_strangers_failures_do_not_lock_the_reviewer_out_from_elsewhere(
    queue: ReviewQueue,
) -> None:
    """Five wrong passwords for ana from a stranger's address throttle that address, not ana:
    she still signs in from her own."""
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    stranger = TestClient(site, client=("203.0.113.9", 40000))
    for attempt in range(5):
        assert sign_in(stranger, "ana", f"guess {attempt}").status_code == 401
    again = sign_in(stranger, "ana", "correct horse")
    assert again.status_code == 429  # the stranger's address is throttled for ana
    ana = TestClient(site, client=("198.51.100.7", 40000))
    reply = sign_in(ana, "ana", "correct horse", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/review/"


def test_the_throttle_forgets_failures_after_its_window() -> None:
    from prescore.review.reviewers import SignInThrottle

    now = [0.0]
    throttle = SignInThrottle(per_pair=2, per_address=3, window=60, clock=lambda: now[0])
    throttle.failed("ana", "203.0.113.9")
    assert throttle.retry_after("ana", "203.0.113.9") == 0
    now[0] = 10
    throttle.failed("ana", "203.0.113.9")
    assert throttle.retry_after("ana", "203.0.113.9") == 50  # the pair's budget is spent
    assert throttle.retry_after("ana", "198.51.100.7") == 0  # ana, from elsewhere
    assert throttle.retry_after("ben", "203.0.113.9") == 0  # the address has one try left
    throttle.failed("ben", "203.0.113.9")
    assert throttle.retry_after("cy", "203.0.113.9") == 50  # the address's budget is spent
    now[0] = 61
    assert throttle.retry_after("ana", "203.0.113.9") == 0
    assert throttle.retry_after("cy", "203.0.113.9") == 0


def test_the_throttle_stays_bounded_whatever_names_are_tried() -> None:
    """Client-chosen names and addresses cannot grow the throttle: 100,000 distinct ones, some
    a megabyte long, leave at most `max_keys` fixed-size entries, and asking adds none."""
    from prescore.review.reviewers import SignInThrottle

    throttle = SignInThrottle(per_pair=5, per_address=20, window=900, max_keys=1_000)
    for n in range(100_000):
        assert (
            throttle.retry_after(f"guess-{n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}") >= 0
        )
    assert len(throttle.failures) == 0  # asking whether a key is throttled stores nothing
    for n in range(100_000):
        throttle.failed(f"guess-{n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    huge = "x" * 1_000_000
    throttle.failed(huge, huge)
    assert len(throttle.failures) == 1_000
    assert all(len(slot) == 64 for slot in throttle.failures)  # digests, never the names
    assert len(throttle.failures[SignInThrottle._slot(f"address:{huge}")]) == 1
    for n in range(20):
        throttle.failed(f"anyone-{n}", "203.0.113.9")
    assert throttle.retry_after("anyone", "203.0.113.9") > 0  # still locked out


def test_a_page_added_without_a_listing_needs_a_signed_in_reviewer(queue: ReviewQueue) -> None:
    """Refusal is the review app's default too: a page nobody listed as public sends a
    stranger to sign in, while the sign-in page itself stays open."""
    from fastapi.responses import PlainTextResponse

    page = review_app.create_review_app()

    @page.get("/a-page-added-later", response_class=PlainTextResponse)
    def added() -> str:
        return "reviewers only"

    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    stranger = TestClient(site)
    refused = stranger.get("/review/a-page-added-later", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/review/login"
    assert stranger.get("/review/login").status_code == 200
    sign_in(stranger, "ana", "correct horse")
    assert stranger.get("/review/a-page-added-later").text == "reviewers only"


def test_x_forwarded_for_from_loopback_cannot_pick_the_address(
    queue: ReviewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under uvicorn as the service runs it, a client on loopback that names a new address in
    X-Forwarded-For each time is still counted at its own address, and its budget runs out."""
    import uvicorn

    from prescore.review.mount import mount_review

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)  # restored after the test
    mounted = mount_review()
    review_app.connect(mounted.app, queue, "test-session-secret")
    site = FastAPI()
    site.mount(mounted.path, mounted.app)
    config = uvicorn.Config(site, log_level="warning")
    config.load()  # the app as uvicorn serves it, its proxy-headers middleware included
    local = TestClient(config.loaded_app, client=("127.0.0.1", 40000))
    for n in range(20):  # the address's budget, spent on a new name and "address" each time
        forged = {"X-Forwarded-For": f"192.0.2.{n}"}
        assert sign_in(local, f"name-{n}", "guess", headers=forged).status_code == 401
    forged = {"X-Forwarded-For": "192.0.2.99"}
    assert sign_in(local, "ana", "correct horse", headers=forged).status_code == 429


def test_behind_a_configured_proxy_the_right_most_untrusted_hop_counts(
    queue: ReviewQueue,
) -> None:
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret", trusted_proxies=["10.0.0.0/24"])
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    proxy = TestClient(site, client=("10.0.0.5", 40000))
    for n in range(5):  # the proxy appends the real peer; the client forged what is left of it
        sent = {"X-Forwarded-For": f"192.0.2.{n}, 203.0.113.9, 10.0.0.7"}
        assert sign_in(proxy, "ana", "guess", headers=sent).status_code == 401
    sent = {"X-Forwarded-For": "192.0.2.99, 203.0.113.9"}
    assert sign_in(proxy, "ana", "correct horse", headers=sent).status_code == 429
    # a peer that is no proxy is counted at its own address, whatever it forwards
    direct = TestClient(site, client=("203.0.113.9", 40000))
    sent = {"X-Forwarded-For": "198.51.100.7"}
    assert sign_in(direct, "ana", "correct horse", headers=sent).status_code == 429
    sent = {"X-Forwarded-For": "198.51.100.7"}  # ana herself, through the proxy
    reply = sign_in(proxy, "ana", "correct horse", headers=sent, follow_redirects=False)
    assert reply.status_code == 303


def test_sign_in_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    """Login CSRF: another site's form posting a name and password (its own reviewer's) is
    refused, with no session and no failed attempt counted; the page offers a fresh form."""
    stranger = TestClient(client.app)
    for token in ({}, {"csrf": "forged"}):
        data = {"name": "ana", "password": "correct horse", **token}
        reply = stranger.post("/review/login", data=data, follow_redirects=False)
        assert reply.status_code == 403 and "sign-in form expired" in reply.text
        assert stranger.get("/review/", follow_redirects=False).status_code == 303
    # a token from another session does not do either
    other = csrf_of(TestClient(client.app).get("/review/login").text)
    data = {"name": "ana", "password": "correct horse", "csrf": other}
    assert stranger.post("/review/login", data=data).status_code == 403
    assert sign_in(stranger, "ana", "correct horse", follow_redirects=False).status_code == 303


def test_trusted_proxies_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from prescore.serving.settings import ServiceSettings

    monkeypatch.setenv("PRESCORE_ALLOW_ANONYMOUS", "1")
    monkeypatch.delenv("PRESCORE_TRUSTED_PROXIES", raising=False)
    assert ServiceSettings.from_environment().trusted_proxies == ()  # none unless configured
    monkeypatch.setenv("PRESCORE_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16,")
    assert ServiceSettings.from_environment().trusted_proxies == ("10.0.0.5", "10.1.0.0/16")
    monkeypatch.setenv("PRESCORE_TRUSTED_PROXIES", "proxy.example")
    with pytest.raises(ValueError, match="'proxy.example' is not an IP address or network"):
        ServiceSettings.from_environment()


def clocked_site(queue: ReviewQueue, now: list[float], idle_minutes: float) -> FastAPI:
    page = review_app.create_review_app()
    review_app.connect(
        page, queue, "test-session-secret", idle_minutes=idle_minutes, clock=lambda: now[0]
    )
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    return site


def test_an_idle_session_is_sent_to_sign_in_again(queue: ReviewQueue) -> None:
    """Each request refreshes the session's last-seen time; an hour without one ends it."""
    now = [1_000_000.0]
    client = TestClient(clocked_site(queue, now, idle_minutes=60))
    sign_in(client, "ana", "correct horse")
    for _ in range(3):  # in use, the session outlives the idle timeout many times over
        now[0] += 59 * 60
        assert client.get("/review/", follow_redirects=False).status_code == 200
    now[0] += 60 * 60
    idle = client.get("/review/", follow_redirects=False)
    assert idle.status_code == 303 and idle.headers["location"] == "/review/login"
    now[0] += 1  # nothing of the ended session comes back, even at once
    assert client.get("/review/", follow_redirects=False).status_code == 303
    sign_in(client, "ana", "correct horse")
    assert client.get("/review/", follow_redirects=False).status_code == 200


def test_a_session_ends_fourteen_days_after_sign_in_however_active(queue: ReviewQueue) -> None:
    now = [1_000_000.0]
    client = TestClient(clocked_site(queue, now, idle_minutes=30 * 24 * 60))
    sign_in(client, "ana", "correct horse")
    now[0] += 14 * 24 * 3600 - 1
    assert client.get("/review/", follow_redirects=False).status_code == 200
    now[0] += 2
    assert client.get("/review/", follow_redirects=False).status_code == 303


def test_the_idle_timeout_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from prescore.serving.settings import ServiceSettings

    monkeypatch.setenv("PRESCORE_ALLOW_ANONYMOUS", "1")
    monkeypatch.delenv("PRESCORE_SESSION_IDLE_MINUTES", raising=False)
    assert ServiceSettings.from_environment().session_idle_minutes == 60
    monkeypatch.setenv("PRESCORE_SESSION_IDLE_MINUTES", "15")
    assert ServiceSettings.from_environment().session_idle_minutes == 15
