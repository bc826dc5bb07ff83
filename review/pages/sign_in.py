"""Signing in and out of the review pages, with failed sign-ins throttled per name and address
pair and per address (review/reviewers.py)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prescore.review.pages.render import ROOT, page
from prescore.review.pages.session import csrf_ok, queue_of, signed_in
from prescore.review.reviewers import SignInThrottle, authenticate, end_sessions, session_token

router = APIRouter()


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return page(request, "login.html")


@router.post("/login")
def login(request: Request, name: str = Form(...), password: str = Form(...)) -> Response:
    throttle: SignInThrottle = request.app.state.throttle
    address = client_address(request)
    wait = throttle.retry_after(name, address)
    if wait > 0:
        response = page(
            request, "login.html", 429, problem="Too many failed sign-ins; try again later."
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    reviewer = authenticate(queue_of(request), name, password)
    if reviewer is None:
        throttle.failed(name, address)
        return page(request, "login.html", 401, problem="Name or password is wrong.")
    request.session.clear()
    request.session["reviewer"] = reviewer.name
    request.session["token"] = session_token(queue_of(request), reviewer.name)
    return RedirectResponse(f"{ROOT}/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    name = signed_in(request)
    if csrf_ok(request, csrf):
        if name is not None:
            end_sessions(queue_of(request), name)  # a copied cookie ends with this one
        request.session.clear()
    return RedirectResponse(f"{ROOT}/login", status_code=303)
