"""Quick dial (the routing guide's "End-Point to End-Point"): a subscriber dials a short
number and reaches the account of the same number range.  Sans-I/O: existence is asked
through a callable.

The guide's example: account ``31208005169@ag-projects.com`` with quick dial prefix
``312080051`` dials ``60``; the proxy tries ``31208005160@ag-projects.com``.

:func:`complete` applies when all of these hold, else it answers None and routing goes on
with the number as dialled:

* the caller is a local subscriber whose ``quickdial_prefix`` is set and all digits;
* the dialled user part is digits only (no ``+``: that is an E.164 number) and shorter than
  a full number: shorter than the caller's own username when that is numeric (the guide
  requires it), and prefix + number at most 15 digits (E.164);
* the dialled address itself is no account or alias (a real ``60@domain`` wins);
* prefix + number is an account or alias in the dialled domain.

The domain is the Request-URI's (a local domain: the caller checks); the guide's example
uses the caller's own, which is what a phone puts there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["QuickDial", "complete", "applies"]

#: E.164 numbers have at most 15 digits
MAX_DIGITS = 15


class QuickDial(NamedTuple):
    """The completed address to route to instead of the dialled one."""

    username: str
    domain: str


def applies(account: Any, user: str) -> bool:
    """Whether ``user`` dialled by ``account`` is a short number quick dial may complete
    (the conditions of the module's text that need no look-up)."""
    if account is None:
        return False
    prefix = (getattr(account, "quickdial_prefix", "") or "").strip()
    if not prefix or not prefix.isdigit():
        return False
    if not user or not user.isdigit():
        return False
    if len(prefix) + len(user) > MAX_DIGITS:
        return False
    own = getattr(account, "username", "")
    return not (own.isdigit() and len(user) >= len(own))


def complete(account: Any, user: str, domain: str, exists: Callable[[str, str], bool]) -> QuickDial | None:
    """The quick-dialled address for ``user@domain`` dialled by ``account``, or None.

    ``exists(username, domain)`` answers whether an account or alias of that address exists
    (the pipeline passes the directory's cached look-ups)."""
    if not applies(account, user):
        return None
    if exists(user, domain):
        return None
    full = account.quickdial_prefix.strip() + user
    if not exists(full, domain):
        return None
    return QuickDial(full, domain)
