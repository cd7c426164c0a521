"""ENUM NAPTR records (RFC 6116 section 3.4, RFC 3403) built from provisioned mappings.

A mapping row carries an API ``type`` (``sip``, ``mailto``, ``web:http``...), a target URI
(``mapto``), a priority and a TTL.  The DNS side wants a terminal NAPTR: flag ``u``, the
``E2U+`` enumservice, and a regexp that rewrites any number to the target URI.  This module
is pure: rows in, dnspython rdata out.
"""

from __future__ import annotations

import dns.name
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.IN.NAPTR import NAPTR

#: API mapping type -> enumservice (RFC 6117/6118 registrations); anything else is E2U+<type>.
ENUMSERVICES = {
    "sip": "E2U+sip",
    "mailto": "E2U+email:mailto",
    "web:http": "E2U+web:http",
    "tel": "E2U+pstn:tel",
    "h323": "E2U+h323",
}

#: RFC 3402 lets the regexp use any delimiter that is not a digit, flag or backslash; we
#: prefer ``!`` (what every ENUM example uses) and fall back when the URI contains it.
_DELIMITERS = "!#|/~%"


class BadMapping(ValueError):
    """A mapping that cannot be expressed as a NAPTR (too long, no usable delimiter...)."""


def enumservice(mapping_type: str) -> str:
    """The NAPTR service field for an API mapping type."""
    t = mapping_type.strip()
    if t.upper().startswith("E2U+"):
        return "E2U+" + t[4:]
    return ENUMSERVICES.get(t.lower(), "E2U+" + t)


def regexp(mapto: str) -> str:
    """``!^.*$!<mapto>!`` with backslashes escaped so the URI is taken literally."""
    target = mapto.replace("\\", "\\\\")
    for d in _DELIMITERS:
        if d not in target:
            return f"{d}^.*${d}{target}{d}"
    raise BadMapping(f"no regexp delimiter available for {mapto!r}")


def naptr(mapping_type: str, mapto: str, priority: int) -> NAPTR:
    """The terminal (flag ``u``) NAPTR of one mapping; order and preference both come from
    the mapping's priority, so the lowest priority is tried first."""
    service = enumservice(mapping_type)
    rx = regexp(mapto)
    if len(rx.encode()) > 255 or len(service.encode()) > 255:
        raise BadMapping(f"mapping too long for a NAPTR character-string: {mapto!r}")
    prio = max(0, min(int(priority), 65535))
    return NAPTR(
        dns.rdataclass.IN, dns.rdatatype.NAPTR, prio, prio, b"u", service.encode(), rx.encode(),
        dns.name.root,
    )
