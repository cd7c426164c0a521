"""MSRP URIs (RFC 4975 section 6): ``msrp[s]://[user@]host[:port]/session-id;transport``.

The relay and the end-points compare URIs to decide where a request goes, so comparison
follows section 6.1: scheme, host and transport case-insensitively, the port (defaulting to
2855), the session-id exactly; the user part is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MsrpUri", "URIError", "DEFAULT_PORT", "parse_uri", "parse_path"]

#: the port of an MSRP URI that does not give one (RFC 4975 section 6)
DEFAULT_PORT = 2855

_URI = re.compile(
    r"(?P<scheme>msrps?)://(?:(?P<user>[^@/\s]+)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:/(?P<session>[A-Za-z0-9\-._~%!$&'()*+,=:@]*))?"
    r";(?P<transport>[A-Za-z0-9\-_.!~*'()]+)(?P<params>(?:;[^\s;]*)*)",
    re.IGNORECASE,
)


class URIError(ValueError):
    """A string that is not an MSRP URI."""


@dataclass(frozen=True)
class MsrpUri:
    scheme: str
    host: str
    port: int = DEFAULT_PORT
    session_id: str = ""
    transport: str = "tcp"
    user: str = ""
    params: str = ""

    @property
    def secure(self) -> bool:
        """``msrps``: the hop is TLS (or WSS) protected."""
        return self.scheme == "msrps"

    def key(self) -> tuple[str, str, int, str, str]:
        """What RFC 4975 section 6.1 compares, normalised (the user part does not count)."""
        return (self.scheme, self.host.lower(), self.port, self.session_id, self.transport.lower())

    def authority(self) -> tuple[str, int]:
        return self.host.strip("[]").lower(), self.port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MsrpUri) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}"
        session = f"/{self.session_id}" if self.session_id else ""
        return f"{self.scheme}://{user}{self.host}{port}{session};{self.transport}{self.params}"


def parse_uri(text: str) -> MsrpUri:
    """One MSRP URI; raises :class:`URIError`."""
    m = _URI.fullmatch(text.strip())
    if not m:
        raise URIError(f"not an MSRP URI: {text[:80]!r}")
    port = int(m["port"]) if m["port"] else DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise URIError(f"port out of range in {text[:80]!r}")
    return MsrpUri(m["scheme"].lower(), m["host"], port, m["session"] or "", m["transport"],
                   m["user"] or "", m["params"] or "")


def parse_path(text: str, limit: int = 16) -> list[MsrpUri]:
    """A To-Path / From-Path / Use-Path value: URIs separated by white space, at most
    ``limit`` of them (each one is a hop the relay may have to open a connection to)."""
    parts = text.split()
    if not parts:
        raise URIError("empty path")
    if len(parts) > limit:
        raise URIError(f"path of {len(parts)} URIs, more than {limit}")
    return [parse_uri(p) for p in parts]
