"""Watcher information (RFC 3857 template package ``presence.winfo``, RFC 3858 document).

Why: a presentity's client learns who asks to see it -- above all the *pending* watchers it
must confirm or refuse (by writing its pres-rules) -- and follows their changes.  The first
NOTIFY of a winfo subscription carries the full list (``state="full"``); each later one
only the watchers that changed (``state="partial"``), the ``version`` one up each time, so
a client that missed one knows to re-subscribe (RFC 3858 4.2).
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from sipproxy.presence.subscription import Subscription

__all__ = ["WINFO_NS", "CONTENT_TYPE", "watcher_event", "watcherinfo"]

WINFO_NS = "urn:ietf:params:xml:ns:watcherinfo"
CONTENT_TYPE = "application/watcherinfo+xml"

#: a subscription's termination reason -> the watcher's ``event`` attribute (RFC 3857 3.2.4)
_EVENTS = {"deactivated": "deactivated", "probation": "probation", "rejected": "rejected",
           "timeout": "timeout", "giveup": "giveup", "noresource": "noresource"}


def watcher_event(sub: Subscription) -> str:
    """The event that put the watcher in its state: ``subscribe`` (a new or pending
    subscription), ``approved`` (authorized), or the termination reason."""
    if sub.state == "terminated":
        return _EVENTS.get(sub.reason, "timeout")
    if sub.state == "active":
        return "approved"
    return "subscribe"


def watcherinfo(resource: str, watchers: Iterable[Subscription], version: int, full: bool,
                now: float, package: str = "presence") -> bytes:
    """The watcherinfo document for ``resource`` (a URI) listing ``watchers``."""
    root = etree.Element(f"{{{WINFO_NS}}}watcherinfo", nsmap={None: WINFO_NS},
                         version=str(version), state="full" if full else "partial")
    wl = etree.SubElement(root, f"{{{WINFO_NS}}}watcher-list", resource=resource, package=package)
    for sub in watchers:
        status = sub.state if sub.state in ("pending", "active", "terminated") else "waiting"
        w = etree.SubElement(wl, f"{{{WINFO_NS}}}watcher", id=f"{sub.call_id}:{sub.from_tag}"[:255],
                             event=watcher_event(sub), status=status)
        w.text = f"sip:{sub.watcher}"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
