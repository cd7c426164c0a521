"""ENUM (RFC 6116, formerly RFC 3761): from an E.164 number to SIP URIs, sans-I/O.

* :func:`enum_domain` -- the domain queried for NAPTR records: the digits reversed, dot
  separated, under an ENUM tree (``+31201234`` -> ``4.3.2.1.0.2.1.3.e164.arpa``);
* :func:`sip_uris` -- the NAPTR answer processed (RFC 3402 section 4, RFC 3403): the
  records for SIP (service ``E2U+sip``, or the RFC 2916 spelling ``sip+E2U``, any case)
  with the terminal flag ``u``, ordered by ORDER then PREFERENCE; the first ORDER that
  yields a SIP URI is the answer (the records of later orders are not considered); each
  record's substitution expression is applied to the Application Unique String, the E.164
  number with its ``+``;
* :func:`apply_regexp` -- one substitution expression (``!^.*$!sip:user@host!``, with
  ``\\1``..``\\9`` back-references and the ``i`` flag).

Malformed records (a bad expression, a back-reference to a group that does not exist, a
result that is not a SIP URI, a non-terminal record) are skipped, never raised.
Non-terminal NAPTR records (empty flags, a replacement domain) are not followed.

Pure: the records come from a :class:`sipproxy.routing.resolver.Resolver`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from sipproxy.routing.resolver import Naptr
from sipproxy.sip.uri import ParseError, parse_uri

__all__ = ["enum_domain", "enum_domains", "is_sip_service", "apply_regexp", "sip_uris"]

_DIGITS = re.compile(r"\+?([0-9]{1,15})")

#: POSIX bracket classes (RFC 3402 expressions are POSIX EREs) -> Python's
_POSIX_CLASSES = {
    "[:digit:]": r"0-9", "[:alpha:]": r"A-Za-z", "[:alnum:]": r"A-Za-z0-9",
    "[:upper:]": r"A-Z", "[:lower:]": r"a-z", "[:space:]": r" \t\r\n\v\f",
    "[:xdigit:]": r"0-9A-Fa-f", "[:punct:]": r"!-/:-@\[-`{-~", "[:blank:]": r" \t",
}


def enum_domain(e164: str, tld: str = "e164.arpa") -> str:
    """The ENUM domain of ``e164`` (``+`` optional) in the tree ``tld``, without a trailing
    dot.  ValueError when ``e164`` is not 1 to 15 digits."""
    m = _DIGITS.fullmatch(e164)
    if m is None:
        raise ValueError(f"not an E.164 number: {e164!r}")
    tld = tld.strip(".")
    return ".".join(reversed(m.group(1))) + ("." + tld if tld else "")


def enum_domains(e164: str, tlds: Iterable[str]) -> list[str]:
    """:func:`enum_domain` in each tree of ``tlds``, in their order."""
    return [enum_domain(e164, tld) for tld in tlds]


def is_sip_service(service: str) -> bool:
    """``E2U+sip`` (RFC 3761/6116, also with more enumservices: ``E2U+sip+h323``) or the
    RFC 2916 ``sip+E2U``; case-insensitive."""
    parts = service.lower().split("+")
    if len(parts) >= 2 and parts[0] == "e2u":
        return "sip" in parts[1:]
    if len(parts) >= 2 and parts[-1] == "e2u":
        return "sip" in parts[:-1]
    return False


def _split(regexp: str) -> tuple[str, str, str] | None:
    """``DELIM ere DELIM repl DELIM flags`` -> (ere, repl, flags); None when malformed.

    The delimiter is the first character: not a digit, a backslash or the flag ``i``.  A
    backslash escapes the next character in the ERE and the replacement (kept as written:
    the escape means something to the ERE or the replacement); an escaped delimiter
    stands for itself."""
    if len(regexp) < 3:
        return None
    delim = regexp[0]
    if delim.isdigit() or delim in "\\i":
        return None
    fields: list[str] = []
    current: list[str] = []
    i, n = 1, len(regexp)
    while i < n:
        c = regexp[i]
        if c == "\\" and i + 1 < n:
            nxt = regexp[i + 1]
            if nxt != delim:
                current.append(c + nxt)
            else:  # the delimiter itself, a literal in the ERE
                current.append(re.escape(nxt) if not fields else nxt)
            i += 2
            continue
        if c == delim:
            fields.append("".join(current))
            current = []
            if len(fields) == 2:
                flags = regexp[i + 1:]
                if flags not in ("", "i"):
                    return None
                return fields[0], fields[1], flags
        else:
            current.append(c)
        i += 1
    return None


def _python_ere(ere: str) -> str:
    for posix, python in _POSIX_CLASSES.items():
        ere = ere.replace(posix, python)
    return ere


def _substitute(repl: str, m: re.Match[str]) -> str | None:
    """The replacement with ``\\N`` back-references filled in (a group that did not take
    part is empty); ``\\x`` is ``x``.  None for a reference to a group that does not exist."""
    if "\\" not in repl:  # the usual ``!^.*$!sip:user@host!``: the replacement as it is
        return repl
    out: list[str] = []
    i, n = 0, len(repl)
    while i < n:
        c = repl[i]
        if c == "\\" and i + 1 < n:
            nxt = repl[i + 1]
            if "1" <= nxt <= "9":
                group = int(nxt)
                if group > (m.re.groups or 0):
                    return None
                out.append(m.group(group) or "")
            else:
                out.append(nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compiled(regexp: str) -> tuple[re.Pattern[str], str] | None:
    """(the compiled ERE, the replacement) of a substitution expression; None when it is
    malformed.  Cached: a platform's records use a few expressions for many numbers
    (``!^.*$!sip:user@host!``), and every ENUM-routed call applies one."""
    parts = _split(regexp)
    if parts is None:
        return None
    ere, repl, flags = parts
    try:
        return re.compile(_python_ere(ere), re.IGNORECASE if flags == "i" else 0), repl
    except (re.error, OverflowError, RecursionError):
        return None


def apply_regexp(regexp: str, aus: str) -> str | None:
    """Apply the NAPTR substitution expression ``regexp`` to ``aus``; None when it is
    malformed or does not match.  As RFC 3402 says, the ERE may match any part of the
    string, and the result is the replacement alone (not the string with the match
    replaced)."""
    compiled = _compiled(regexp)
    if compiled is None:
        return None
    pattern, repl = compiled
    m = pattern.search(aus)
    if m is None:
        return None
    return _substitute(repl, m)


def _sip_uri(text: str | None) -> str | None:
    if not text or not text[:5].lower().startswith(("sip:", "sips:")):
        return None
    try:
        uri = parse_uri(text)
    except (ParseError, ValueError):
        return None
    return text if uri.host else None


def sip_uris(records: Iterable[Naptr], aus: str) -> list[str]:
    """The SIP URIs of an ENUM NAPTR answer for the number ``aus`` (``+CC...``), in
    preference order, from the first ORDER that gives one (see the module's text)."""
    usable = []
    for rec in records:
        try:
            if (rec.flags.lower() == "u" and is_sip_service(rec.service)
                    and rec.replacement in ("", ".") and rec.regexp):
                usable.append(rec)
        except (AttributeError, TypeError):
            continue  # not a record at all
    usable.sort(key=lambda r: (r.order, r.preference))
    found: list[str] = []
    current_order = None
    for rec in usable:
        if rec.order != current_order:
            if found:
                break
            current_order = rec.order
        uri = _sip_uri(apply_regexp(rec.regexp, aus))
        if uri is not None and uri not in found:
            found.append(uri)
    return found
