"""Event state publication (RFC 3903) for the presence package, as plain code.

Why apart: the ESC's rules (section 6 of the RFC) -- which PUBLISH creates, refreshes,
modifies or removes an event state, when a tag is stale (412), what the answer carries
(``SIP-ETag``, ``Expires``) -- are decided here from the request and the presentity's
current publications; the agent stores what was decided and notifies the watchers.

* no ``SIP-If-Match``, a PIDF body: initial publication (a new entity tag);
* ``SIP-If-Match`` of a live publication and no body: refresh (``Expires`` > 0) or removal
  (``Expires: 0``); with a body: modification (the body replaces the state);
* ``SIP-If-Match`` of nothing known (expired, removed, never issued): 412;
* every change, refresh included, issues a new entity tag (6.3 step 7).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sipproxy.presence.pidf import CONTENT_TYPE, XmlError, parse_pidf
from sipproxy.presence.subscription import Settings, granted_expires, parse_event
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response

__all__ = ["Publication", "Outcome", "handle_publish", "new_etag"]


@dataclass
class Publication:
    """One device's event state (a ``presence_publications`` row)."""

    presentity: str
    etag: str
    document: str
    content_type: str = CONTENT_TYPE
    expires_at: int = 0


@dataclass
class Outcome:
    """What a PUBLISH decided: the response, and what changes in the store.

    ``action`` is ``"insert"``, ``"update"`` (``old_etag`` -> ``publication``),
    ``"remove"`` (``old_etag``) or ``""`` (refused: nothing changes).  ``changed`` says
    whether the composed state changed (watchers are notified)."""

    response: Response
    action: str = ""
    publication: Publication | None = None
    old_etag: str = ""
    changed: bool = False


def new_etag() -> str:
    return secrets.token_hex(10)


def _refuse(req: Request, status: int, reason: str | None = None, headers: list | None = None) -> Outcome:
    return Outcome(make_response(req, status, reason, to_tag=new_tag(), headers=headers or []))


def handle_publish(req: Request, presentity: str, current: dict[str, Publication], now: float,
                   settings: Settings) -> Outcome:
    """Decide a PUBLISH for ``presentity`` whose live publications are ``current`` (by tag)."""
    package, _ = parse_event(req.headers.get("event"))
    if package != "presence":
        return _refuse(req, 489, "Bad Event", headers=[("Allow-Events", "presence")])
    expires = granted_expires(req, settings)
    if isinstance(expires, Response):
        return Outcome(expires)
    body = req.body or b""
    if body:
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            return _refuse(req, 415, headers=[("Accept", CONTENT_TYPE)])
        if len(body) > settings.max_body:
            return _refuse(req, 413, "PIDF Document Too Large")
        try:
            parse_pidf(body, settings.max_body)
        except XmlError as exc:
            return _refuse(req, 400, f"Bad PIDF: {str(exc)[:80]}")
    match = (req.headers.get("sip-if-match") or "").strip()
    expires_at = int(now) + expires
    if not match:
        if not body:
            return _refuse(req, 400, "Missing Body")
        if expires == 0:  # an initial publication removed at once: nothing to keep
            return Outcome(_ok(req, new_etag(), 0))
        pub = Publication(presentity, new_etag(), body.decode("utf-8", "replace"), CONTENT_TYPE, expires_at)
        return Outcome(_ok(req, pub.etag, expires), "insert", pub, changed=True)
    old = current.get(match)
    if old is None or old.expires_at <= now:
        return _refuse(req, 412, "Conditional Request Failed")
    if expires == 0:
        return Outcome(_ok(req, old.etag, 0), "remove", None, old_etag=old.etag, changed=True)
    document = body.decode("utf-8", "replace") if body else old.document
    pub = Publication(presentity, new_etag(), document, CONTENT_TYPE, expires_at)
    return Outcome(_ok(req, pub.etag, expires), "update", pub, old_etag=old.etag, changed=bool(body))


def _ok(req: Request, etag: str, expires: int) -> Response:
    return make_response(req, 200, to_tag=new_tag(), headers=[("SIP-ETag", etag), ("Expires", str(expires))])
