"""EnumPort wire types (API.md 4.2) and the value checks for ENUM (RFC 6116) provisioning.

Numbers and prefixes are E.164 digits without ``+`` (the client strips it; we accept and
drop a leading ``+`` too).  A mapping becomes one NAPTR in enumdns: ``type`` is the E2U
service (``sip``, ``mailto``, ``web:http``...), ``mapto`` the URI put in the regexp.
"""

from __future__ import annotations

import re

from spyne.model.complex import Array, ComplexModel
from spyne.model.primitive import Integer, Unicode

from ngnpro.soap.faults import NGNProError
from ngnpro.soap.types import OrderBy, Range, StringArray

NS = "urn:AGProjects:NGNPro"
INVALID = 1040

#: E.164 numbers have at most 15 digits (ITU-T E.164 section 6).
E164_MAX = 15

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9+:.-]{0,31}$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s\x00-\x1f\x7f]+$", re.IGNORECASE)


def e164_digits(value: object, field: str, *, allow_empty: bool = False) -> str:
    """Digits of an E.164 number or prefix (a leading ``+`` is dropped), at most 15."""
    text = "" if value is None else str(value).strip()
    if text.startswith("+"):
        text = text[1:]
    if not text and allow_empty:
        return ""
    if not text or not text.isascii() or not text.isdigit():
        raise NGNProError(INVALID, f"{field} {value!r} must be E.164 digits")
    if len(text) > E164_MAX:
        raise NGNProError(INVALID, f"{field} {text} is longer than {E164_MAX} digits")
    return text


def digit_bound(value: int | None, field: str) -> int:
    """``minDigits``/``maxDigits``: 0 (= no bound) up to 15."""
    if value is None:
        return 0
    if not 0 <= value <= E164_MAX:
        raise NGNProError(INVALID, f"{field} {value} is outside 0..{E164_MAX}")
    return int(value)


def enum_service(value: object) -> str:
    """The E2U service of a mapping (RFC 6116 section 2.4.2), e.g. ``sip``, ``web:http``."""
    text = ("" if value is None else str(value)).strip().lower()
    if text.startswith("e2u+"):
        text = text[4:]
    if not _SERVICE.match(text):
        raise NGNProError(INVALID, f"mapping type {value!r} is not an ENUM service name")
    return text


def mapping_uri(value: object) -> str:
    """A mapping's target: an absolute URI (``scheme:rest``) without blanks or controls
    (enumdns picks a regexp delimiter the URI does not contain)."""
    text = ("" if value is None else str(value)).strip()
    if len(text) > 255:
        raise NGNProError(INVALID, "mapping mapto is longer than 255 characters")
    if not _URI.match(text):
        raise NGNProError(INVALID, f"mapping mapto {value!r} is not a URI (scheme:...)")
    return text


# -- wire types -----------------------------------------------------------------------------


class EnumRangeId(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumRangeId"
    _type_info = [("prefix", Unicode), ("tld", Unicode)]


class EnumRange(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumRange"
    _type_info = [
        ("id", EnumRangeId),
        ("ttl", Integer),
        ("info", Unicode),
        ("minDigits", Integer),
        ("maxDigits", Integer),
        ("size", Integer),
        ("customer", Integer),
        ("reseller", Integer),
        ("serial", Integer),
        ("used", Integer),
        ("nameservers", StringArray),
        ("changeDate", Unicode),
    ]


class EnumRangeFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumRangeFilter"
    _type_info = [
        ("prefix", Unicode),
        ("tld", Unicode),
        ("info", Unicode),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class EnumRangeQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumRangeQuery"
    _type_info = [("filter", EnumRangeFilter), ("orderBy", OrderBy), ("range", Range)]


class EnumRangeList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumRangeList"
    _type_info = [("total", Integer), ("ranges", Array(EnumRange))]


class EnumId(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumId"
    _type_info = [("number", Unicode), ("tld", Unicode)]


class EnumMapping(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumMapping"
    _type_info = [
        ("id", Integer),
        ("type", Unicode),
        ("mapto", Unicode),
        ("ttl", Integer),
        ("priority", Integer),
    ]


class EnumNumber(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumNumber"
    _type_info = [
        ("id", EnumId),
        ("owner", Integer),
        ("info", Unicode),
        ("mappings", Array(EnumMapping)),
        ("customer", Integer),
        ("reseller", Integer),
        ("changeDate", Unicode),
    ]


class EnumNumberFilter(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumNumberFilter"
    _type_info = [
        ("number", Unicode),
        ("tld", Unicode),
        ("type", Unicode),
        ("mapto", Unicode),
        ("owner", Integer),
        ("customer", Integer),
        ("reseller", Integer),
    ]


class EnumNumberQuery(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumNumberQuery"
    _type_info = [("filter", EnumNumberFilter), ("orderBy", OrderBy), ("range", Range)]


class EnumNumberList(ComplexModel):
    __namespace__ = NS
    __type_name__ = "EnumNumberList"
    _type_info = [("total", Integer), ("numbers", Array(EnumNumber))]
