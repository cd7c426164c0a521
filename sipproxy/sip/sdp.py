"""SDP (RFC 8866) as the media relay needs it: read the media lines, write the relay in.

Without I/O.  :func:`parse` reads what the relay must know of each ``m=`` section: media
type, port, the connection address (media-level ``c=`` or the session-level one), the RTCP
port (``a=rtcp``, RFC 3605, or ``a=rtcp-mux``, RFC 5761), the direction attribute (hold),
the codec (first format of the ``m=`` line and its ``a=rtpmap``) and the ICE candidates.
:func:`rewrite` puts the relay's address and ports into the ``c=``, ``m=`` and ``a=rtcp``
lines and offers the relay as an ICE ``relay`` candidate (RFC 8445 section 5.1.2, SDP syntax
RFC 8839): by default in place of the endpoints' own candidates, so that ICE agents cannot
route around the relay (which would then see no packets and end the call for media
timeout).  Everything else is left byte for byte as it was.

Hold is kept as the endpoint said it: ``a=sendonly``/``recvonly``/``inactive`` pass through,
and an old-style ``c=IN IP4 0.0.0.0`` (RFC 2543 hold) stays 0.0.0.0.  A stream disabled with
port 0 keeps port 0.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SdpError", "Media", "SessionDescription", "parse", "relay_streams", "rewrite"]

#: static RTP payload types (RFC 3551 table 4 and 5) by number
STATIC_PAYLOADS = {"0": "PCMU", "3": "GSM", "4": "G723", "5": "DVI4", "6": "DVI4", "7": "LPC",
                   "8": "PCMA", "9": "G722", "10": "L16", "11": "L16", "12": "QCELP", "13": "CN",
                   "14": "MPA", "15": "G728", "16": "DVI4", "17": "DVI4", "18": "G729",
                   "25": "CelB", "26": "JPEG", "28": "nv", "31": "H261", "32": "MPV", "33": "MP2T",
                   "34": "H263"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
HOLD_ADDRESSES = ("0.0.0.0", "::")
ICE_FOUNDATION = "msprelay"
ICE_LOCAL_PREFERENCE = 65535


class SdpError(ValueError):
    """An SDP body the relay cannot use (the proxy should forward it unchanged or reject it)."""


@dataclass
class Media:
    """One ``m=`` section."""

    media_type: str
    port: int
    proto: str
    formats: list[str]
    address: str = ""
    rtcp_port: int = 0
    rtcp_address: str = ""
    rtcp_mux: bool = False
    direction: str = "sendrecv"
    codec: str = ""
    candidates: list[str] = field(default_factory=list)
    rtpmap: dict[str, str] = field(default_factory=dict)


@dataclass
class SessionDescription:
    lines: list[str]
    eol: str
    address: str = ""  # session-level c=
    direction: str = ""  # session-level direction attribute
    ice: bool = False  # ice-ufrag at session level
    media: list[Media] = field(default_factory=list)


def _decode(sdp: str | bytes) -> str:
    return sdp.decode("utf-8", "surrogateescape") if isinstance(sdp, bytes) else sdp


def _split(text: str) -> tuple[list[str], str]:
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    return lines, eol


def _connection_address(value: str) -> str:
    """``IN IP4 192.0.2.1/127`` -> ``192.0.2.1`` (a multicast TTL or count dropped)."""
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"unusable c= line {value!r}")
    addr = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise SdpError(f"c= address {addr!r} is not an IP address") from None
    return addr


def parse(sdp: str | bytes) -> SessionDescription:
    """Read the relay-relevant parts of an SDP body; :class:`SdpError` if it is unusable."""
    lines, eol = _split(_decode(sdp))
    if not lines or not lines[0].startswith("v="):
        raise SdpError("not an SDP body (no v= line first)")
    desc = SessionDescription(lines, eol)
    media: Media | None = None
    for line in lines:
        kind, _, value = line.partition("=")
        if kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"bad m= line {line!r}")
            try:
                port = int(parts[1].split("/")[0])
            except ValueError:
                raise SdpError(f"bad port in {line!r}") from None
            if not 0 <= port <= 65535:
                raise SdpError(f"port out of range in {line!r}")
            media = Media(parts[0], port, parts[2], parts[3:], address=desc.address,
                          direction=desc.direction or "sendrecv")
            desc.media.append(media)
        elif kind == "c":
            addr = _connection_address(value)
            if media is None:
                desc.address = addr
            else:
                media.address = addr
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in DIRECTIONS:
                if media is None:
                    desc.direction = name
                else:
                    media.direction = name
            elif media is None:
                if name == "ice-ufrag":
                    desc.ice = True
            elif name == "rtcp":
                parts = arg.split()
                try:
                    media.rtcp_port = int(parts[0])
                except (ValueError, IndexError):
                    raise SdpError(f"bad a=rtcp line {line!r}") from None
                if len(parts) >= 4:
                    media.rtcp_address = parts[3]
            elif name == "rtcp-mux":
                media.rtcp_mux = True
            elif name == "candidate":
                media.candidates.append(arg)
            elif name == "rtpmap":
                pt, _, enc = arg.partition(" ")
                media.rtpmap[pt] = enc.split("/")[0]
    for m in desc.media:
        if m.port and not m.address:
            raise SdpError(f"no c= line for the {m.media_type} stream")
        first = m.formats[0] if m.formats else ""
        m.codec = m.rtpmap.get(first) or (STATIC_PAYLOADS.get(first, first) if "RTP" in m.proto else first)
    return desc


def relay_streams(desc: SessionDescription) -> list[dict[str, Any]]:
    """The ``streams`` of a control-protocol ``update`` for this SDP."""
    return [{"type": m.media_type, "ip": m.address if m.port else (m.address or "0.0.0.0"),
             "port": m.port, "rtcp_port": m.rtcp_port, "rtcp_ip": m.rtcp_address,
             "rtcp_mux": m.rtcp_mux, "codec": m.codec, "direction": m.direction}
            for m in desc.media]


def _addrtype(ip: str) -> str:
    return "IP6" if ":" in ip else "IP4"


def relay_candidates(ip: str, port: int, rtcp_port: int, mux: bool) -> list[str]:
    """The relay as ICE relay candidates (type preference 0: the last resort)."""
    out = []
    for component, p in ((1, port), (2, rtcp_port)):
        if component == 2 and mux:
            break
        priority = (0 << 24) + (ICE_LOCAL_PREFERENCE << 8) + (256 - component)
        out.append(f"a=candidate:{ICE_FOUNDATION} {component} UDP {priority} {ip} {p} typ relay"
                   f" raddr {ip} rport {p}")
    return out


def rewrite(sdp: str | bytes, ip: str, ports: list[dict[str, int]], ice: str = "replace") -> str | bytes:
    """The SDP with the relay's ``ip`` and ``ports`` (one ``{"port", "rtcp_port"}`` per m= line,
    as the relay answered) in place of the endpoint's.

    ``ice="replace"`` (default) offers only the relay as candidate; ``ice="add"`` keeps the
    endpoint's candidates and adds the relay's with the lowest priority.
    """
    if ice not in ("replace", "add"):
        raise ValueError("ice must be 'replace' or 'add'")
    was_bytes = isinstance(sdp, bytes)
    desc = parse(sdp)
    if len(ports) != len(desc.media):
        raise SdpError(f"{len(ports)} relay streams for {len(desc.media)} m= lines")
    conn = f"IN {_addrtype(ip)} {ip}"
    out: list[str] = []
    index = -1

    def close_section() -> None:
        if index < 0:
            return
        m, p = desc.media[index], ports[index]
        if p["port"] and (m.candidates or desc.ice):
            # at the end of the media section: the order of a= lines carries no meaning here
            out.extend(relay_candidates(ip, p["port"], p["rtcp_port"], m.rtcp_mux))

    for line in desc.lines:
        kind, _, value = line.partition("=")
        if kind == "m":
            close_section()
            index += 1
            # the fields as `parse` found them (any white space between them, not just SP)
            media_type, port_field, rest = value.split(None, 2)
            port_part = port_field.split("/")
            port_part[0] = str(ports[index]["port"])
            out.append(f"m={media_type} {'/'.join(port_part)} {rest}")
            continue
        if kind == "c":
            addr = _connection_address(value)
            if addr in HOLD_ADDRESSES:
                out.append(line)
            else:
                out.append("c=" + conn)
            continue
        if kind == "a" and index >= 0:
            name, _, arg = value.partition(":")
            if name == "rtcp" and ports[index]["port"]:
                parts = arg.split()
                text = f"a=rtcp:{ports[index]['rtcp_port']}"
                if len(parts) >= 4:
                    text += " " + conn
                out.append(text)
                continue
            if name in ("candidate", "remote-candidates") and ice == "replace":
                continue
        out.append(line)
    close_section()
    text = desc.eol.join(out) + desc.eol
    return text.encode("utf-8", "surrogateescape") if was_bytes else text
