"""The XCAP request URI (RFC 4825 section 6): ``ROOT/auid/users/xui/path[/~~/node]?ns``.

Pure.  The path is read from the raw request URI (percent-encoded), so that an encoded
``/`` inside an XUI, a file name or an attribute value of the node selector is not
mistaken for a separator.  The XUI is kept as the account's ``user@domain`` (``sip:`` /
``sips:`` dropped, the domain lowercased): that is the ``xui`` column the presence agent
looks documents up by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

#: longest file path (``XcapDocument.filename``)
MAX_FILENAME = 190
_AUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class UriError(ValueError):
    """A request URI that names no XCAP resource (the server answers 404)."""


@dataclass(frozen=True)
class XcapUri:
    """What a request URI names.  ``xui`` is None for the global tree."""

    auid: str
    xui: str | None
    filename: str
    node: str | None = None  # the node selector, percent-decoded, or None for the document
    query: str = ""

    @property
    def document_path(self) -> str:
        """The document selector below the root, as URIs of this server write it."""
        tree = "global" if self.xui is None else f"users/sip:{self.xui}"
        return f"{self.auid}/{tree}/{self.filename}"


def normalize_xui(text: str) -> str:
    """``sip:Alice@Example.COM`` -> ``Alice@example.com`` (user part kept as is)."""
    for scheme in ("sip:", "sips:"):
        if text[:len(scheme)].lower() == scheme:
            text = text[len(scheme):]
            break
    user, at, domain = text.rpartition("@")
    if not at or not user or not domain:
        raise UriError("an XUI is user@domain or sip:user@domain")
    return f"{user}@{domain.lower()}"


def parse_uri(raw_path: str, root: str, query: str = "") -> XcapUri:
    """Split a raw (percent-encoded) request path under ``root`` (e.g. ``/xcap-root/``)."""
    if not raw_path.startswith(root):
        raise UriError("not under the XCAP root")
    segments = raw_path[len(root):].split("/")
    node = None
    try:
        if "~~" in segments:
            cut = segments.index("~~")
            node = unquote("/".join(segments[cut + 1:]), errors="strict")
            segments = segments[:cut]
            if not node:
                raise UriError("an empty node selector")
        parts = [unquote(s, errors="strict") for s in segments]
    except UnicodeDecodeError:
        raise UriError("the path is not UTF-8") from None
    if len(parts) < 3 or any(not p or p in (".", "..") for p in parts):
        raise UriError("expected AUID/global/FILE or AUID/users/XUI/FILE")
    auid = parts[0]
    if not _AUID.match(auid):
        raise UriError("bad application usage id")
    if parts[1] == "global":
        xui, rest = None, parts[2:]
    elif parts[1] == "users" and len(parts) >= 4:
        xui, rest = normalize_xui(parts[2]), parts[3:]
    else:
        raise UriError("expected AUID/global/FILE or AUID/users/XUI/FILE")
    filename = "/".join(rest)
    if len(filename) > MAX_FILENAME or any(ord(c) < 32 for c in filename):
        raise UriError("file name too long or with control characters")
    return XcapUri(auid, xui, filename, node, query)
