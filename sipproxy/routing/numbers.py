"""Telephone numbers: recognise a dialled number and normalise it to E.164 (``+CC...``).

The routing guide's ``handle-incoming-pstn`` logic, as settings of ``[sipproxy]``:

=====================  ===========================  =====================================
form                   recognised by                becomes
=====================  ===========================  =====================================
international          ``pstn_regexp``              the ``international_prefix`` stripped,
                       (default ``00[1-9][0-9]{6,}``)  ``+`` prefixed (``0031...`` -> ``+31...``)
national               ``local_pstn_regexp``        the leading ``0`` stripped, ``+`` and
                       (default ``0[1-9][0-9]{4,}``)   ``country_code`` prefixed
country                ``COUNTRY_CODE[1-9][0-9]{4,}``  ``+`` prefixed (``31...`` -> ``+31...``)
E.164                  ``+[0-9]{7,}``               itself
=====================  ===========================  =====================================

The regexps match the whole number, as the guide's ``uri =~ "^sip:PSTN_REGEXP@.*"`` does,
and are tried in the guide's order.  The result must be an E.164 number: ``+``, a first
digit 1-9 and 7 to 15 digits in all (ITU-T E.164 allows at most 15); anything else is not
a number and gives None.

Visual separators (``-``, ``.``, ``(``, ``)``, RFC 3966) are dropped first, and a SIP user
part is percent-decoded and cut at its first ``;`` (``user=phone`` parameters such as
``;isub=``).  A ``tel:`` URI's number goes through the same rules (RFC 3966 ``phone-context``
is not interpreted: a local number is read as dialled in this country).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

__all__ = [
    "NumberPlan", "Number", "DEFAULT_PSTN_REGEXP", "DEFAULT_LOCAL_PSTN_REGEXP",
    "DEFAULT_COUNTRY_CODE", "DEFAULT_INTERNATIONAL_PREFIX", "is_e164", "uri_number",
]

DEFAULT_COUNTRY_CODE = "31"
DEFAULT_INTERNATIONAL_PREFIX = "00"
#: the international prefix and at least 7 digits (the guide's E.164 rule is ``\+[0-9]{7,}``)
DEFAULT_PSTN_REGEXP = "00[1-9][0-9]{6,}"
#: the national trunk prefix 0 and a national number of 5 digits or more, as the guide's
#: ``COUNTRY_CODE[1-9][0-9]{4,}``
DEFAULT_LOCAL_PSTN_REGEXP = "0[1-9][0-9]{4,}"

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_GUIDE_E164 = re.compile(r"\+[0-9]{7,}")
_SEPARATORS = str.maketrans("", "", "-.()")


def is_e164(text: str) -> bool:
    """True for ``+`` and 7 to 15 digits, the first not 0."""
    return _E164.fullmatch(text) is not None


class Number(NamedTuple):
    """A recognised number: its E.164 form and the form it was dialled in (``"e164"``,
    ``"international"``, ``"national"`` or ``"country"``)."""

    e164: str
    form: str


class NumberPlan:
    """The numbering settings of ``[sipproxy]`` and the normalisation they drive."""

    __slots__ = ("country_code", "international_prefix", "pstn_regexp", "local_pstn_regexp",
                 "_pstn", "_local", "_country")

    def __init__(self, country_code: str = DEFAULT_COUNTRY_CODE,
                 international_prefix: str = DEFAULT_INTERNATIONAL_PREFIX,
                 pstn_regexp: str = DEFAULT_PSTN_REGEXP,
                 local_pstn_regexp: str = DEFAULT_LOCAL_PSTN_REGEXP) -> None:
        if not re.fullmatch(r"[1-9][0-9]{0,2}", country_code):
            raise ValueError(f"country_code: {country_code!r} is not an E.164 country code")
        if not re.fullmatch(r"[0-9]{1,4}", international_prefix):
            raise ValueError(f"international_prefix: {international_prefix!r} is not a prefix of digits")
        self.country_code = country_code
        self.international_prefix = international_prefix
        self.pstn_regexp = pstn_regexp
        self.local_pstn_regexp = local_pstn_regexp
        self._pstn = re.compile(pstn_regexp)
        self._local = re.compile(local_pstn_regexp)
        self._country = re.compile(re.escape(country_code) + r"[1-9][0-9]{4,}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> NumberPlan:
        """From the validated ``[sipproxy]`` section."""
        return cls(section["country_code"], section["international_prefix"],
                   section["pstn_regexp"], section["local_pstn_regexp"])

    def __repr__(self) -> str:
        return (f"NumberPlan(country_code={self.country_code!r}, international_prefix="
                f"{self.international_prefix!r}, pstn_regexp={self.pstn_regexp!r}, "
                f"local_pstn_regexp={self.local_pstn_regexp!r})")

    def classify(self, text: str | None) -> Number | None:
        """The number ``text`` (a user part or a tel: number) as E.164, with its form; None
        when it is not a telephone number by these settings."""
        if not text:
            return None
        if "%" in text:
            text = unquote(text)
        text = text.partition(";")[0].translate(_SEPARATORS)
        if not text or len(text) > 32:
            return None
        if text[0] == "+":
            if _GUIDE_E164.fullmatch(text):
                return _checked(text, "e164")
            return None
        if not text.isascii() or not text.isdigit():
            return None
        if self._pstn.fullmatch(text):
            if text.startswith(self.international_prefix):
                return _checked("+" + text[len(self.international_prefix):], "international")
            return None
        if self._local.fullmatch(text):
            return _checked("+" + self.country_code + text[1:], "national")
        if self._country.fullmatch(text):
            return _checked("+" + text, "country")
        return None

    def normalise(self, text: str | None) -> str | None:
        """``text`` as an E.164 number (``+CC...``), or None (see :meth:`classify`)."""
        number = self.classify(text)
        return number.e164 if number is not None else None

    def normalise_uri(self, uri: Any) -> str | None:
        """The E.164 number a Request-URI names: a ``tel:`` URI's number or a SIP URI's
        user part; None for anything else."""
        return self.normalise(uri_number(uri))


def uri_number(uri: Any) -> str | None:
    """The text that may be a number in ``uri`` (a parsed :class:`~sipproxy.sip.uri.URI`):
    the number of a tel: URI, the user part of a sip:/sips: URI; None otherwise."""
    scheme = (uri.scheme or "").lower()
    if scheme in ("tel", "sip", "sips"):
        return uri.user or None
    return None


def _checked(e164: str, form: str) -> Number | None:
    return Number(e164, form) if _E164.fullmatch(e164) else None
