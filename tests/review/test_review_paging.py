"""The reviewers' queue page in pages, without a browser: the total, and next / previous links
that keep the filters."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from prescore.eval.routing import Reason
from prescore.review.pages import app as review_app
from prescore.review.pages import queue as queue_page
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import set_reviewer
from tests.review.test_queue import review
from tests.review.test_review_form import sign_in


@pytest.fixture
def client(review_db: str, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """On SQLite and on Postgres."""
    monkeypatch.setattr(queue_page, "PAGE_SIZE", 2)
    queue = ReviewQueue(review_db)
    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    queue.enqueue([review(n, confidence=1 - n / 10) for n in range(4)])
    queue.enqueue([review(4, reasons=(Reason.input_too_short,))])
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)  # where the service mounts it
    client = TestClient(site)
    reply = sign_in(client, "ana", "correct horse")
    assert reply.status_code == 200 and 'id="count"' in reply.text
    return client


def shown(page: str) -> list[str]:
    return re.findall(r'<td><a href="/review/submission/(\d+)">', page)


def link(page: str, name: str) -> str | None:
    found = re.search(rf'id="{name}"[^>]*href="([^"]*)"', page)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_queue_page_shows_a_page_the_total_and_links_between_pages(client: TestClient) -> None:
    first = client.get("/review/").text
    assert "5 submission(s) waiting." in first and shown(first) == ["5", "4"]
    assert link(first, "previous") is None and link(first, "next") == "/review/?offset=2"
    assert link(first, "open-top") == "/review/submission/5"  # access key O: still the top item
    second = client.get("/review/", params={"offset": 2}).text
    assert shown(second) == ["3", "2"] and "Showing 3 to 4 of 5." in second
    assert link(second, "previous") == "/review/" and link(second, "next") == "/review/?offset=4"
    last = client.get("/review/", params={"offset": 4}).text
    assert shown(last) == ["1"] and link(last, "next") is None
    assert shown(client.get("/review/", params={"offset": -3}).text) == ["5", "4"]


def test_the_page_links_keep_the_filters(client: TestClient) -> None:
    page = client.get(
        "/review/", params={"reason": "low_confidence", "credential": "wait-time"}
    ).text
    assert "4 submission(s) waiting." in page
    assert link(page, "next") == "/review/?credential=wait-time&reason=low_confidence&offset=2"
    only = client.get("/review/", params={"reason": "input_too_short"}).text
    assert (
        "1 submission(s) waiting." in only and link(only, "next") is None and "Showing" not in only
    )
