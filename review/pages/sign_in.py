"""Signing in and out of the review pages, with failed sign-ins throttled per name and address
pair and per address (review/reviewers.py)."""

from __future__ import annotations

import ipaddress
import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prescore.review.pages.render import ROOT, page
from prescore.review.pages.session import csrf_ok, queue_of, signed_in, start_session
from prescore.review.reviewers import SignInThrottle, authenticate, end_sessions, session_token

router = APIRouter()
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: Request) -> str:
    """The address a sign-in comes from: the peer's, unless the peer is one of the configured
    trusted proxies (PRESCORE_TRUSTED_PROXIES); then the right-most X-Forwarded-For hop that
    is not itself a trusted proxy, the first one a client could not have written."""
    peer = request.client.host if request.client else ""
    proxies: list[IPNetwork] = request.app.state.trusted_proxies
    if not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return page(request, "login.html")


@router.post("/login")
def login(
    request: Request, name: str = Form(...), password: str = Form(...), csrf: str = Form("")
) -> Response:
    if not csrf_ok(request, csrf):  # login CSRF: another site signing you in as its reviewer
        return page(
            request, "login.html", 403, problem="The sign-in form expired; please sign in again."
        )
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
    start_session(request, reviewer.name, session_token(queue_of(request), reviewer.name))
    return RedirectResponse(f"{ROOT}/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    name = signed_in(request)
    if csrf_ok(request, csrf):
        if name is not None:
            end_sessions(queue_of(request), name)  # a copied cookie ends with this one
        request.session.clear()
    return RedirectResponse(f"{ROOT}/login", status_code=303)
