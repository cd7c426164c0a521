"""SDP of MSRP sessions (RFC 4975 section 8, RFC 4145 ``a=setup``) as the ACM needs it:
read the ``a=path`` of each ``m=message`` stream, write the ACM's URI in its place.

Without I/O.  An ACM (RFC 6135) puts itself in the MSRP path by replacing the path an
end-point offered or answered with the ACM's own URI, and writes ``a=setup:passive`` for
itself so that both end-points connect actively -- outbound, through their NATs -- to it.
The ``m=`` port and protocol and a media-level ``c=`` follow the new URI; everything else,
the file-transfer attributes of RFC 5547 (``a=file-selector``, ``a=file-transfer-id``, ...)
among them, is left as it was.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["MessageStream", "message_streams", "rewrite_paths", "MsrpSdpError"]


class MsrpSdpError(ValueError):
    """An SDP whose message streams cannot be read (forward it unchanged)."""


@dataclass
class MessageStream:
    """One ``m=message`` section: its index among all ``m=`` lines, its path and setup."""

    index: int
    port: int
    proto: str
    path: list[str]
    setup: str = ""


def _lines(sdp: str | bytes) -> tuple[list[str], str]:
    text = sdp.decode("utf-8", "surrogateescape") if isinstance(sdp, bytes) else sdp
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, eol


def message_streams(sdp: str | bytes) -> list[MessageStream]:
    """The ``m=message`` streams of ``sdp`` with their ``a=path`` (RFC 4975 section 8.1)."""
    lines, _ = _lines(sdp)
    if not lines or not lines[0].startswith("v="):
        raise MsrpSdpError("not an SDP body")
    out: list[MessageStream] = []
    index, current = -1, None
    for line in lines:
        if line.startswith("m="):
            index += 1
            parts = line[2:].split()
            current = None
            if len(parts) >= 3 and parts[0] == "message" and "MSRP" in parts[2].upper():
                try:
                    port = int(parts[1])
                except ValueError:
                    raise MsrpSdpError(f"bad port in {line!r}") from None
                current = MessageStream(index, port, parts[2], [])
                out.append(current)
        elif current is not None and line.startswith("a=path:"):
            current.path = line[7:].split()
        elif current is not None and line.startswith("a=setup:"):
            current.setup = line[8:].strip()
    for s in out:
        if s.port and not s.path:
            raise MsrpSdpError(f"m=message stream {s.index} without a=path")
    return out


def _host_port(uri: str) -> tuple[str, int, bool]:
    scheme, _, rest = uri.partition("://")
    authority = rest.split("/", 1)[0].split(";", 1)[0].rpartition("@")[2]
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    return host, int(port or 2855), scheme.lower() == "msrps"


def rewrite_paths(sdp: str | bytes, paths: dict[int, list[str]], setup: str = "passive") -> str | bytes:
    """``sdp`` with the ``a=path`` of the message streams at the given indexes replaced,
    ``a=setup`` set to ``setup``, and the ``m=`` port/protocol and media ``c=`` made to
    match the first new URI.  Same type (str or bytes) as given."""
    was_bytes = isinstance(sdp, bytes)
    lines, eol = _lines(sdp)
    out: list[str] = []
    index, target = -1, None

    def close() -> None:
        if target is None:
            return
        if not any(x.startswith("a=setup:") for x in section):
            section.append(f"a=setup:{setup}")
        out.extend(section)

    section: list[str] = []
    for line in lines:
        if line.startswith("m="):
            close()
            index += 1
            target = paths.get(index)
            section = []
            if target is None:
                out.append(line)
                continue
            host, port, secure = _host_port(target[0])
            parts = line[2:].split()
            parts[1] = str(port)
            parts[2] = "TCP/TLS/MSRP" if secure else "TCP/MSRP"
            section.append("m=" + " ".join(parts))
            try:
                family = "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
                section.append(f"c=IN {family} {host}")
            except ValueError:
                pass  # a host name: the path is what counts (RFC 4975 section 8.1)
            continue
        if target is None:
            out.append(line)
        elif line.startswith("a=path:"):
            section.append("a=path:" + " ".join(target))
        elif line.startswith("a=setup:"):
            section.append(f"a=setup:{setup}")
        elif line.startswith("c=") and len(section) >= 2 and section[1].startswith("c="):
            continue  # the stream's own c= is replaced by the one written above
        else:
            section.append(line)
    close()
    text = eol.join(out) + eol
    return text.encode("utf-8", "surrogateescape") if was_bytes else text
