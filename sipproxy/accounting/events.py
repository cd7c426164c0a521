"""Accounting records from call events, sans-I/O: what a Start, Interim-Update, Stop and
Failed record carry, as RADIUS attribute lists and as ``accounting`` table rows.

The attribute names are those of the shipped dictionary (``dictionary.msp``, next to this
module): the standard RADIUS accounting attributes (RFC 2865/2866), the SIP attributes of
OpenSIPS's acc module (``Sip-Method``, ``Sip-Response-Code``, ``Sip-From-Tag`` ... numbered
as in OpenSIPS's and CDRTool's ``dictionary.opensips``), CDRTool's (``Billing-Party``,
``Source-IP``, ``User-Agent`` ...) and MediaProxy's media attributes (``Media-Codecs``,
``Sip-User-Agents`` ...).  docs/accounting.md lists every one.

Which record when (OpenSIPS acc conventions: the ``Acct-Status-Type`` says what happened):

* ``Start`` -- a 2xx answered an initial INVITE (:func:`answered` makes the :class:`Call`);
* ``Interim-Update`` -- every ``interim_interval`` seconds of an established call;
* ``Stop`` -- the call ended: a BYE from either party, or the proxy ending it (media
  timeout): who, why, how long, and the media relay's summary (:class:`CallEnd`);
* ``Failed`` -- an initial INVITE answered with a final failure (>= 300): a missed call;
* ``Accounting-On`` / ``Accounting-Off`` (RFC 2866 5.1: 7 and 8) -- the proxy's accounting
  started / stopped (:func:`nas_attributes`): no call, the NAS itself.

Every record has a :func:`record_id` (``MSP-Record-Id``): the same call event always gives
the same id, so a record queued twice is kept once, and a record sent twice (a server that
logged it but whose answer was lost) can be told apart from a new one by the server.

Nothing here reads a clock, a socket or a database: times are handed in.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sipproxy.dialog.state import DialogInfo

__all__ = [
    "START", "STOP", "INTERIM", "FAILED", "ACCOUNTING_ON", "ACCOUNTING_OFF", "nas_attributes", "Call", "CallEnd", "MediaTotals", "answered",
    "failed", "media_totals", "record_id", "start_attributes", "interim_attributes",
    "stop_attributes", "failed_attributes", "stop_row", "failed_row", "SIP_METHODS",
    "TERMINATE_CAUSES",
]

#: ``Acct-Status-Type`` values (RFC 2866; ``Failed`` = 15 as OpenSIPS acc sends it)
START, STOP, INTERIM, FAILED = "Start", "Stop", "Interim-Update", "Failed"
#: ``Acct-Status-Type`` 7 and 8 (RFC 2866 5.1): the NAS's accounting starts / stops
ACCOUNTING_ON, ACCOUNTING_OFF = "Accounting-On", "Accounting-Off"

#: ``Sip-Method`` values (OpenSIPS acc: a bit per method)
SIP_METHODS = {
    "INVITE": 1, "CANCEL": 2, "ACK": 4, "BYE": 8, "INFO": 16, "OPTIONS": 32, "UPDATE": 64,
    "REGISTER": 128, "MESSAGE": 256, "SUBSCRIBE": 512, "NOTIFY": 1024, "PRACK": 2048,
    "REFER": 4096, "PUBLISH": 8192,
}

#: ``Acct-Terminate-Cause`` (RFC 2866) by who ended the call
TERMINATE_CAUSES = {"caller": "User-Request", "callee": "User-Request",
                    "media timeout": "Idle-Timeout", "proxy": "Admin-Reset"}

#: ``Service-Type`` of every record (OpenSIPS acc)
SERVICE_TYPE = "Sip-Session"


@dataclass(frozen=True)
class Call:
    """What the accounting knows of a call: from the INVITE and its answer (or failure)."""

    call_id: str
    from_tag: str
    to_tag: str
    caller: str                    # user@domain of the caller (the authenticated one)
    callee: str                    # user@domain routing resolved (canonical)
    from_uri: str = ""             # the From URI as sent
    to_uri: str = ""               # the To URI of the INVITE (what the caller dialled)
    translated_uri: str = ""       # where the proxy sent the call (the answering branch)
    billing_party: str = ""
    source_ip: str = ""
    source_port: int = 0
    user_agent: str = ""           # the caller's User-Agent
    callee_user_agent: str = ""    # the answer's User-Agent (or Server)
    from_header: str = ""
    proxy_ip: str = ""
    proxy_port: int = 0
    cseq: int = 0
    answer_time: float = 0.0       # seconds since the epoch
    status: int = 200
    reason: str = "OK"
    #: the rating of a PSTN call (sipproxy.dialog.prepaid.encode_tariff): its price at the end
    tariff: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Call:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class MediaTotals:
    """The media relay's summary of a call, summed over its streams."""

    codecs: str = ""               # "PCMU" or "PCMU,H264": each stream's codec
    applications: str = ""         # "audio" or "audio,video": each stream's media type
    caller_bytes: int = 0          # caller -> callee (RADIUS input: the user's side)
    caller_packets: int = 0
    callee_bytes: int = 0          # callee -> caller (RADIUS output)
    callee_packets: int = 0
    info: str = ""                 # "timeout" when the relay saw the media stop


@dataclass(frozen=True)
class CallEnd:
    """How a call ended: ``party`` is "caller", "callee" or "proxy"."""

    time: float
    party: str
    reason: str = ""
    media: MediaTotals = field(default_factory=MediaTotals)


def _sip_uri(value: str) -> str:
    return value if not value or ":" in value.split("@", 1)[0] else f"sip:{value}"


def answered(dialog: DialogInfo, *, when: float, billing_party: str = "", source_ip: str = "",
             source_port: int = 0, user_agent: str = "", from_uri: str = "", to_uri: str = "",
             translated_uri: str = "", callee_user_agent: str = "", from_header: str = "",
             proxy_ip: str = "", proxy_port: int = 0, status: int = 200, reason: str = "OK",
             tariff: str = "") -> Call:
    """The call a 2xx established, from its dialog and what the INVITE said."""
    return Call(
        call_id=dialog.call_id, from_tag=dialog.from_tag, to_tag=dialog.to_tag,
        caller=dialog.caller, callee=dialog.callee, from_uri=from_uri or _sip_uri(dialog.caller),
        to_uri=to_uri or _sip_uri(dialog.callee), translated_uri=translated_uri,
        billing_party=billing_party or dialog.caller, source_ip=source_ip, source_port=source_port,
        user_agent=user_agent, callee_user_agent=callee_user_agent, from_header=from_header,
        proxy_ip=proxy_ip, proxy_port=proxy_port, cseq=dialog.caller_cseq, answer_time=when,
        status=status, reason=reason, tariff=tariff)


def failed(call: Call, *, when: float, status: int, reason: str) -> Call:
    """A call whose INVITE got the final failure ``status`` (``call`` as for an answer,
    with the failure's To tag)."""
    return replace(call, answer_time=when, status=status, reason=reason)


def media_totals(summary: dict[str, Any] | None) -> MediaTotals:
    """Sum a media relay summary (``sipproxy.media.relay.MediaRelays.remove``; see
    docs/mediaproxy.md) over its streams; an absent or unreadable one gives zeros."""
    if not isinstance(summary, dict):
        return MediaTotals()
    codecs: list[str] = []
    kinds: list[str] = []
    totals = [0, 0, 0, 0]
    streams = summary.get("streams")
    for stream in streams if isinstance(streams, list) else []:
        if not isinstance(stream, dict):
            continue
        codec, kind = str(stream.get("codec") or ""), str(stream.get("media_type") or "")
        if codec and codec not in codecs:
            codecs.append(codec)
        if kind and kind not in kinds:
            kinds.append(kind)
        for i, key in enumerate(("bytes_caller_to_callee", "packets_caller_to_callee",
                                 "bytes_callee_to_caller", "packets_callee_to_caller")):
            try:
                totals[i] += max(0, int(stream.get(key) or 0))
            except (TypeError, ValueError):
                pass
    info = "timeout" if "timeout" in str(summary.get("reason") or "") else ""
    return MediaTotals(",".join(codecs), ",".join(kinds), *totals, info=info)


def record_id(call_id: str, from_tag: str, kind: str, seq: int = 0) -> str:
    """The record's identity: the same call event always gives the same id."""
    text = f"{call_id}\n{from_tag}\n{kind}\n{seq}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


# -- attribute lists ------------------------------------------------------------------------

Attributes = list[tuple[str, Any]]

#: RADIUS integers are 32-bit unsigned; string attributes carry at most 253 bytes
_MAX_INT = 2**32 - 1


def _text(value: str) -> str:
    data = value.encode("utf-8", "replace")
    if len(data) <= 253:
        return value
    return data[:253].decode("utf-8", "ignore")


def _common(call: Call, kind: str, when: float, nas: dict[str, Any], seq: int = 0) -> Attributes:
    attrs: Attributes = [
        ("Acct-Status-Type", kind),
        ("Service-Type", SERVICE_TYPE),
        ("Acct-Session-Id", call.call_id),
        ("Sip-From-Tag", call.from_tag),
        ("Sip-To-Tag", call.to_tag),
        ("Event-Timestamp", int(when)),
        ("User-Name", call.billing_party),
        ("Billing-Party", call.billing_party),
        ("Calling-Station-Id", call.from_uri),
        ("Called-Station-Id", call.to_uri),
        ("Canonical-URI", _sip_uri(call.callee)),
        ("Sip-Translated-Request-URI", call.translated_uri),
        ("Source-IP", call.source_ip),
        ("Source-Port", str(call.source_port) if call.source_port else ""),
        ("User-Agent", call.user_agent),
        ("From-Header", call.from_header),
        ("Sip-Cseq", str(call.cseq) if call.cseq else ""),
        ("SIP-Proxy-IP", call.proxy_ip),
        ("MSP-Record-Id", record_id(call.call_id, call.from_tag, kind, seq)),
    ]
    try:
        if call.proxy_ip and ipaddress.ip_address(call.proxy_ip).version == 4:
            attrs.append(("NAS-IP-Address", call.proxy_ip))
    except ValueError:
        pass
    if call.proxy_port:
        attrs.append(("NAS-Port", call.proxy_port))
    if nas.get("nas_identifier"):
        attrs.append(("NAS-Identifier", nas["nas_identifier"]))
    # empty strings are left out: RADIUS has no empty attribute (RFC 2865 5: length >= 3)
    return [(k, _text(v) if isinstance(v, str) else v) for k, v in attrs if v != ""]


def _nas(nas: dict[str, Any]) -> Attributes:
    """What names the NAS, as in every call record: ``NAS-IP-Address`` (IPv4 only: the
    attribute has no IPv6 form, RFC 3162's NAS-IPv6-Address is not in the dictionary) and
    ``NAS-Identifier``."""
    attrs: Attributes = []
    ip = nas.get("nas_ip") or ""
    try:
        if ip and ipaddress.ip_address(ip).version == 4 and not ipaddress.ip_address(ip).is_unspecified:
            attrs.append(("NAS-IP-Address", ip))
    except ValueError:
        pass
    if nas.get("nas_identifier"):
        attrs.append(("NAS-Identifier", _text(nas["nas_identifier"])))
    return attrs


def nas_attributes(kind: str, session_id: str, when: float, nas: dict[str, Any]) -> Attributes:
    """An ``Accounting-On`` or ``Accounting-Off`` record (``kind``): the proxy's accounting
    started or stopped.  A RADIUS server (FreeRADIUS's ``accounting-on`` queries, CDRTool)
    takes it to close the sessions it still holds open for this NAS, which is why it names
    the NAS exactly as the call records do.  ``session_id`` (RFC 2866 5.5: every
    Accounting-Request has an ``Acct-Session-Id``) is the same for an On and the Off of
    the same run, so the pair can be matched; ``nas`` also holds ``nas_ip``, the
    address the proxy listens on."""
    return [
        ("Acct-Status-Type", kind),
        ("Acct-Session-Id", _text(session_id)),
        ("Event-Timestamp", int(when)),
        *_nas(nas),
        ("MSP-Record-Id", record_id(session_id, "", kind)),
    ]


def _seconds(call: Call, when: float) -> int:
    return min(_MAX_INT, max(0, int(when - call.answer_time + 0.5)))


def start_attributes(call: Call, nas: dict[str, Any] | None = None) -> Attributes:
    """The Start record of an answered call."""
    return _common(call, START, call.answer_time, nas or {}) + [
        ("Sip-Method", "Invite"), ("Sip-Response-Code", call.status), ("Acct-Session-Time", 0),
    ]


def interim_attributes(call: Call, when: float, seq: int, nas: dict[str, Any] | None = None) -> Attributes:
    """The ``seq``-th (1, 2, ...) Interim-Update of a call still up at ``when``."""
    return _common(call, INTERIM, when, nas or {}, seq) + [
        ("Sip-Method", "Invite"), ("Sip-Response-Code", call.status),
        ("Acct-Session-Time", _seconds(call, when)),
    ]


def _ua_pair(call: Call) -> str:
    if not call.user_agent and not call.callee_user_agent:
        return ""
    return f"{call.user_agent}+{call.callee_user_agent}"


def stop_attributes(call: Call, end: CallEnd, nas: dict[str, Any] | None = None) -> Attributes:
    """The Stop record: how long, who ended it and why, the media relay's counts."""
    seconds = _seconds(call, end.time)
    media = end.media
    cause = TERMINATE_CAUSES.get("media timeout" if "timeout" in end.reason.lower() else end.party,
                                 "Admin-Reset")
    attrs = _common(call, STOP, end.time, nas or {}) + [
        ("Sip-Method", "Bye"), ("Sip-Response-Code", call.status),
        ("Acct-Session-Time", seconds), ("Sip-Call-Duration", seconds),
        ("Sip-Call-MSDuration", min(_MAX_INT, max(0, round((end.time - call.answer_time) * 1000)))),
        ("Acct-Terminate-Cause", cause),
        ("MSP-Disconnect-Party", end.party),
        ("MSP-Disconnect-Reason", _text(end.reason)),
        ("Acct-Input-Octets", min(_MAX_INT, media.caller_bytes)),
        ("Acct-Output-Octets", min(_MAX_INT, media.callee_bytes)),
        ("Acct-Input-Packets", min(_MAX_INT, media.caller_packets)),
        ("Acct-Output-Packets", min(_MAX_INT, media.callee_packets)),
        ("Media-Codecs", media.codecs),
        ("Sip-Applications", media.applications),
        ("Media-Info", media.info),
        ("Sip-User-Agents", _text(_ua_pair(call))),
    ]
    return [(k, v) for k, v in attrs if v != ""]


def failed_attributes(call: Call, nas: dict[str, Any] | None = None) -> Attributes:
    """The Failed record of an INVITE answered ``call.status`` >= 300 (a missed call)."""
    attrs = _common(call, FAILED, call.answer_time, nas or {}, call.status) + [
        ("Sip-Method", "Invite"), ("Sip-Response-Code", call.status), ("Acct-Session-Time", 0),
        ("MSP-Disconnect-Reason", _text(f"{call.status} {call.reason}".strip())),
    ]
    return attrs


# -- accounting table rows ------------------------------------------------------------------

def _utc(when: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(when, _dt.UTC).replace(tzinfo=None)


def _row(call: Call) -> dict[str, Any]:
    return {
        "call_id": call.call_id[:255], "from_tag": call.from_tag[:128], "to_tag": call.to_tag[:128],
        "method": "INVITE", "status": call.status, "from_uri": call.from_uri[:255],
        "to_uri": call.to_uri[:255], "caller": call.caller[:255], "callee": call.callee[:255],
        "billing_party": call.billing_party[:255], "source_ip": call.source_ip[:64],
        "destination": call.translated_uri[:255], "user_agent": call.user_agent[:255],
        "proxy": call.proxy_ip[:128],
    }


def stop_row(call: Call, end: CallEnd, price: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """The ``accounting`` row of an ended call (column values; datetimes naive UTC);
    ``price(seconds)``: what the call costs (the rating's), else nothing."""
    seconds = _seconds(call, end.time)
    row = {**_row(call), "reason": f"{end.party}: {end.reason}"[:255] if end.reason else end.party,
           "start_time": _utc(call.answer_time), "stop_time": _utc(end.time), "duration": seconds}
    if price is not None:
        row["price"] = str(price(seconds))  # (rows wait in the JSON queue: a Decimal as text)
    return row


def failed_row(call: Call) -> dict[str, Any]:
    """The ``accounting`` row of a failed INVITE (a missed call): no duration."""
    return {**_row(call), "reason": call.reason[:255], "start_time": _utc(call.answer_time),
            "stop_time": _utc(call.answer_time), "duration": 0}
