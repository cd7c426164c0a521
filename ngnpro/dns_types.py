"""DnsPort wire types (API.md 4.3) and the checks that turn client text into stored values.

The stored form is a contract with enumdns, which reads ``dns_records`` directly:

* ``name`` is relative to the zone (``''`` = apex), lower case, no trailing dot;
* MX and SRV keep the MX preference / SRV priority in the ``priority`` column and the rest
  of the rdata in ``value`` (MX: ``exchange``; SRV: ``weight port target``);
* NAPTR keeps the whole rdata in ``value``
  (``order preference "flags" "service" "regexp" replacement``), ``priority`` unused;
* every other type keeps its whole rdata text in ``value``;
* domain names inside values are absolute and written without the trailing dot (the root
  itself stays ``.``).

Values are parsed with dnspython, so what is stored always parses again as rdata: a record
enumdns cannot serve is refused at provisioning time with fault 1040, not at query time.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from spyne.model.complex import Array, ComplexModel
from spyne.model.primitive import Integer, Unicode
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ngnpro.models.customer import Customer
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import NGNProError
from ngnpro.soap.types import OrderBy, Range, StringArray

NS = "urn:AGProjects:NGNPro"

#: Record types DnsPort serves through addRecord (API.md 4.3); SOA is built from the zone.
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "SRV", "NS", "NAPTR", "PTR", "TXT", "LOC")
#: "Fancy" records: mail forwarding and web redirection, kept beside the DNS records.
FANCY_TYPES = ("MBOXFW", "URL")

INVALID = 1040
MAX_VALUE = 4000
MAX_TTL = 2**31 - 1

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f\"<>\\]+$", re.IGNORECASE)


# -- value checks ---------------------------------------------------------------------------


def _text(value: object, field: str, limit: int = 255) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise NGNProError(INVALID, f"{field} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t" for ch in text):
        raise NGNProError(INVALID, f"{field} contains control characters")
    return text


def plain_text(value: object, field: str, limit: int = 255) -> str:
    """Free text (``info``, descriptions): bounded, no control characters."""
    return _text(value, field, limit)


def domain_name(value: object, field: str, *, hostname: bool = False) -> str:
    """A DNS name in presentation form: lower case, no trailing dot, <= 253 octets.

    ``hostname=True`` applies the host rules (letters, digits, hyphens: RFC 952/1123);
    otherwise labels may also hold ``_`` (``_sip._udp`` service names, RFC 2782).
    """
    text = _text(value, field).strip().lower()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise NGNProError(INVALID, f"{field} is empty")
    if len(text) > 253:
        raise NGNProError(INVALID, f"{field} {text!r} is longer than 253 characters")
    pattern = _HOST_LABEL if hostname else _LABEL
    for label in text.split("."):
        if not pattern.match(label):
            raise NGNProError(INVALID, f"{field} {text!r} is not a valid domain name")
    return text


def relative_name(value: object, zone: str, field: str = "name") -> str:
    """A record owner name relative to ``zone`` (``''``/``@`` = apex); a name given in full
    (``www.example.com`` in ``example.com``) is made relative.  ``*`` may lead (wildcard)."""
    text = _text(value, field).strip().lower()
    if text.endswith("."):
        text = text[:-1]
    if text in ("", "@", zone):
        return ""
    if text.endswith("." + zone):
        text = text[: -len(zone) - 1]
    labels = text.split(".")
    check = labels[1:] if labels[0] == "*" else labels
    if check:
        domain_name(".".join(check), field)
    if len(text) + 1 + len(zone) > 253:
        raise NGNProError(INVALID, f"{field} {text!r}.{zone} is longer than 253 characters")
    return text


def nameserver_list(values: list[str] | None, field: str = "nameservers") -> str:
    """Host names of NS records, stored space-separated; at most 16."""
    hosts = [domain_name(v, field, hostname=True) for v in values or [] if v]
    if len(hosts) > 16:
        raise NGNProError(INVALID, f"{field}: at most 16 name servers")
    return " ".join(dict.fromkeys(hosts))


def email_address(value: object, field: str) -> str:
    """``local@domain`` with a valid domain name (used for MBOXFW and SOA contacts)."""
    text = _text(value, field).strip()
    local, at, domain = text.rpartition("@")
    if not at or not EMAIL_LOCAL.match(local):
        raise NGNProError(INVALID, f"{field} {text!r} is not an e-mail address")
    return f"{local}@{domain_name(domain, field, hostname=True)}"


def ttl_value(value: int | None, default: int, field: str = "ttl") -> int:
    """A TTL in seconds; absent or 0 means "the default" (clients send 0 for unset)."""
    if not value:
        return default
    if value < 0 or value > MAX_TTL:
        raise NGNProError(INVALID, f"{field} {value} is outside 0..{MAX_TTL}")
    return int(value)


def u16(value: int | None, field: str, default: int = 0) -> int:
    if value is None:
        return default
    if not 0 <= value <= 65535:
        raise NGNProError(INVALID, f"{field} {value} is outside 0..65535")
    return int(value)


def _name_text(name: dns.name.Name) -> str:
    """An absolute name without its trailing dot; the root stays ``.``."""
    if name == dns.name.root or name == dns.name.empty:
        return "."
    return name.to_text(omit_final_dot=True).lower() if name.is_absolute() else name.to_text().lower()


def _rdata(rtype: str, text: str) -> dns.rdata.Rdata:
    try:
        return dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text, origin=dns.name.root
        )
    except (dns.exception.DNSException, ValueError, TypeError) as exc:
        raise NGNProError(INVALID, f"invalid {rtype} record value {text!r}: {exc}") from None


def _quote_txt(text: str) -> str:
    """One unquoted TXT value as quoted character-strings of <= 255 octets each."""
    raw = text.encode("utf-8")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    out = []
    for chunk in chunks:
        piece = chunk.decode("utf-8", errors="ignore")
        out.append('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(out)


def record_value(rtype: str, value: object, priority: int | None) -> tuple[str, int]:
    """Parse a client's record value for ``rtype``; returns the stored ``(value, priority)``.

    MX and SRV accept the value with or without the leading preference/priority number
    (``mail.example.com`` with ``priority`` 10, or ``10 mail.example.com``).
    """
    text = _text(value, "value", MAX_VALUE).strip()
    if not text:
        raise NGNProError(INVALID, f"{rtype} record value is empty")
    if rtype == "MX":
        parts = text.split()
        if len(parts) == 2 and parts[0].isdigit():
            priority, text = int(parts[0]), parts[1]
        prio = u16(priority, "priority", 10)
        rd = _rdata("MX", f"{prio} {text}")
        return _name_text(rd.exchange), rd.preference
    if rtype == "SRV":
        parts = text.split()
        if len(parts) == 4 and parts[0].isdigit():
            priority, text = int(parts[0]), " ".join(parts[1:])
        prio = u16(priority, "priority", 0)
        rd = _rdata("SRV", f"{prio} {text}")
        return f"{rd.weight} {rd.port} {_name_text(rd.target)}", rd.priority
    if rtype == "NAPTR":
        rd = _rdata("NAPTR", text)
        head = rd.to_text().rsplit(" ", 1)[0]  # order preference "flags" "service" "regexp"
        return f"{head} {_name_text(rd.replacement)}", 0
    if rtype in ("CNAME", "NS", "PTR"):
        rd = _rdata(rtype, text)
        return _name_text(rd.target), 0
    if rtype == "TXT":
        rd = _rdata("TXT", text if text.startswith('"') else _quote_txt(text))
        return rd.to_text(), 0
    if rtype in ("A", "AAAA", "LOC"):
        return _rdata(rtype, text).to_text(), 0
    raise NGNProError(INVALID, f"record type {rtype!r} is not one of {', '.join(RECORD_TYPES)}")


def record_type(value: object, allowed: tuple[str, ...]) -> str:
    text = _text(value, "type").strip().upper()
    if text not in allowed:
        raise NGNProError(INVALID, f"record type {text!r} is not one of {', '.join(allowed)}")
    return text


def fancy_value(rtype: str, value: object) -> str:
    """MBOXFW: one or more comma-separated e-mail addresses; URL: an http(s) URL."""
    text = _text(value, "value", MAX_VALUE).strip()
    if rtype == "MBOXFW":
        targets = [t.strip() for t in text.split(",") if t.strip()]
        if not targets:
            raise NGNProError(INVALID, "MBOXFW value (forwarding address) is empty")
        return ",".join(email_address(t, "value") for t in targets)
    if not _URL.match(text):
        raise NGNProError(INVALID, f"URL value {text!r} is not an http:// or https:// URL")
    return text


# -- wire types -----------------------------------------------------------------------------


class DnsZone(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsZone"
    _type_info = [
        ("name", Unicode),
        ("ttl", Integer),
        ("info", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
        ("nameservers", StringArray),
        ("serial", Integer),
        ("email", Unicode),
        ("refresh", Integer),
        ("retry", Integer),
        ("expire", Integer),
        ("minimum", Integer),
        ("changeDate", Unicode),
    ]


class DnsZoneFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsZoneFilter"
    _type_info = [
        ("name", Unicode),
        ("info", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class DnsZoneQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsZoneQuery"
    _type_info = [("filter", DnsZoneFilter), ("orderBy", OrderBy), ("range", Range)]


class DnsZoneList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsZoneList"
    _type_info = [("total", Integer), ("zones", Array(DnsZone))]


def _record_fields() -> list[tuple[str, type]]:
    return [
        ("id", Integer),
        ("name", Unicode),
        ("zone", Unicode),
        ("type", Unicode),
        ("value", Unicode),
        ("owner", Integer),
        ("ttl", Integer),
        ("priority", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class DnsRecord(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsRecord"
    _type_info = _record_fields()


class DnsFancyRecord(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsFancyRecord"
    _type_info = _record_fields()


class DnsRecordFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsRecordFilter"
    _type_info = [
        ("id", Integer),
        ("zone", Unicode),
        ("name", Unicode),
        ("type", Unicode),
        ("value", Unicode),
        ("owner", Integer),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class DnsRecordQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsRecordQuery"
    _type_info = [("filter", DnsRecordFilter), ("orderBy", OrderBy), ("range", Range)]


class DnsFancyRecordQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsFancyRecordQuery"
    _type_info = [("filter", DnsRecordFilter), ("orderBy", OrderBy), ("range", Range)]


class DnsRecordList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsRecordList"
    _type_info = [("total", Integer), ("records", Array(DnsRecord))]


class DnsFancyRecordList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "DnsFancyRecordList"
    _type_info = [("total", Integer), ("records", Array(DnsFancyRecord))]


# -- helpers shared by the EnumPort, DnsPort and PSTN modules -------------------------------


def next_serial(old: int | None, today: _dt.date | None = None) -> int:
    """The next SOA serial in ``YYYYMMDDnn`` style (RFC 1912 2.2), always increasing: the
    first change of a day jumps to ``YYYYMMDD00``, later ones add 1."""
    day = today or _dt.datetime.now(_dt.UTC).date()
    return max((old or 0) + 1, int(day.strftime("%Y%m%d")) * 100)


def date_text(value: _dt.datetime | None) -> str:
    """``changeDate`` as the UI shows it: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def flush_unique(session: Session, code: int, message: str) -> None:
    """Flush now so that a concurrent insert of the same key (a unique index violation)
    becomes the API's "already exists" fault instead of a generic server error."""
    try:
        session.flush()
    except IntegrityError:
        raise NGNProError(code, message) from None


def _derived_reseller(session: Session, customer: int) -> int:
    row = session.get(Customer, customer)
    if row is None:
        raise NGNProError(INVALID, f"customer {customer} does not exist")
    return row.reseller or (row.id if row.reseller_active else 0)


def new_owner(session: Session, scope: Scope, customer: int | None, reseller: int | None) -> tuple[int, int]:
    """``(customer, reseller)`` of a new record: what the unscoped admin asks for (reseller
    derived from the customer when not given), a reseller may pick one of its customers,
    everyone else gets the login's defaults (API.md 2.2)."""
    if scope.unscoped:
        c, r = customer or 0, reseller or 0
        if c and not r:
            r = _derived_reseller(session, c)
        return (c or r, r)
    c, r = scope.owner_defaults()
    if scope.reseller_id is not None and customer and customer in (scope.visible_ids or ()):
        c = customer
    return c, r


def change_owner(session: Session, scope: Scope, record: Any, customer: int | None, reseller: int | None) -> None:
    """Apply ``customer``/``reseller`` from an update where the caller may move the record:
    the unscoped admin anywhere, a reseller among its own customers; others are ignored
    (round-tripped read-only fields)."""
    if scope.unscoped:
        if reseller is not None and reseller != record.reseller:
            record.reseller = reseller
        if customer is not None and customer != record.customer:
            if customer and reseller is None:
                record.reseller = _derived_reseller(session, customer)
            record.customer = customer
    elif scope.reseller_id is not None and customer and customer in (scope.visible_ids or ()):
        record.customer = customer
