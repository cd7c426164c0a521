"""Least-cost routing (the routing guide's "End-Point to PSTN"): which gateways to try, in
which order, with which number, for a telephone number.  Sans-I/O: the table is an
:class:`~sipproxy.directory.routingdata.LcrTable` snapshot handed in.

The decision, for an E.164 number and an originator (a trusted peer's ``originator``, or
``""`` for subscribers):

1. **Route** -- the routes of the originator whose prefix is the longest one the number
   starts with.  Route prefixes are compared as E.164 digits: ngnpro stores them in the
   00+E.164 form (``0031``), and ``+31`` or ``31`` mean the same; ``""`` matches every
   number; a national ``0...`` prefix matches nothing.  An originator without a matching
   route of its own falls back to the default routes (originator ``""``), unless
   ``fallback`` is off.
2. **Carriers** -- the routes of that one prefix, by priority (lower first, then the older
   route): several routes with the same prefix are several carriers; a carrier named twice
   is tried once.  Shorter prefixes are *not* tried after them: the longest match decides.
3. **Gateways** -- each carrier's gateways in a stable order (by id: the model has no
   weight).
4. **Rules** -- per gateway, the number in 00+E.164 form (``0031201234567``) is rewritten by
   the most specific rule it matches (longest prefix, then lowest id; length bounds count
   the digits of that form, 0 = no bound): strip ``strip`` leading characters, prepend
   ``prepend``.  No matching rule: the 00+E.164 form unchanged.

The result is a list of :class:`Attempt` to try one after the other; the proxy goes on to
the next on a failure worth retrying (the proxy's serial fork, ``sipproxy.proxy.responses.FAIL_OVER``).
"""

from __future__ import annotations

from typing import NamedTuple

from sipproxy.directory.routingdata import Carrier, Gateway, LcrTable, Route, Rule, TrustedPeer

__all__ = ["Attempt", "e164_digits", "select_routes", "apply_rules", "attempts", "peer_number"]

#: E.164: at most 15 digits (ITU-T E.164 section 6)
MAX_E164_DIGITS = 15


class Attempt(NamedTuple):
    """One try: send to ``gateway`` with ``number`` as the Request-URI user part."""

    gateway: Gateway
    number: str
    carrier: Carrier
    route: Route

    @property
    def uri(self) -> str:
        return self.gateway.uri(self.number)


def e164_digits(number: str) -> str | None:
    """The digits of an international number: ``+31...``, ``0031...`` or bare ``31...``
    (visual separators ``-``, ``.``, space and parentheses ignored).  None when it is not
    one: empty, other characters, a national ``0...`` number, or more than 15 digits."""
    n = "".join(ch for ch in number.strip() if ch not in " -.()")
    if n.startswith("+"):
        n = n[1:]
    elif n.startswith("00"):
        n = n[2:]
    if not n.isdigit() or n.startswith("0") or len(n) > MAX_E164_DIGITS:
        return None
    return n


def select_routes(table: LcrTable, digits: str, originator: str = "", *, fallback: bool = True) -> list[Route]:
    """The routes to try for E.164 ``digits`` (step 1 and 2 of the module's text)."""
    routes = _longest_match(table, digits, originator)
    if not routes and originator and fallback:
        routes = _longest_match(table, digits, "")
    seen: set[int] = set()
    out: list[Route] = []
    for route in routes:  # already by priority, then id
        if route.carrier.id not in seen:
            seen.add(route.carrier.id)
            out.append(route)
    return out


def _longest_match(table: LcrTable, digits: str, originator: str) -> tuple[Route, ...]:
    by_prefix = table.index.get(originator)
    if not by_prefix:
        return ()
    for length in range(min(len(digits), table.longest.get(originator, 0)), -1, -1):
        routes = by_prefix.get(digits[:length])
        if routes:
            return routes
    return ()


def _rule_matches(rule: Rule, number: str) -> bool:
    prefix = "00" + rule.prefix[1:] if rule.prefix.startswith("+") else rule.prefix
    if not number.startswith(prefix):
        return False
    if rule.min_length and len(number) < rule.min_length:
        return False
    return not (rule.max_length and len(number) > rule.max_length)


def apply_rules(rules: tuple[Rule, ...] | list[Rule], number: str) -> str:
    """``number`` (00+E.164 form) rewritten by its most specific matching rule (step 4).
    A rule prefix written ``+31`` is compared as ``0031``."""
    best: Rule | None = None
    for rule in rules:
        if _rule_matches(rule, number) and (best is None or (-len(rule.prefix), rule.id) < (-len(best.prefix), best.id)):
            best = rule
    if best is None:
        return number
    return best.prepend + number[best.strip:]


def attempts(table: LcrTable, number: str, originator: str = "", *, fallback: bool = True,
             max_attempts: int | None = None) -> list[Attempt]:
    """The ordered gateways and dialled numbers for ``number`` (an E.164 number in any form
    :func:`e164_digits` takes); empty when it is not one or no route takes it."""
    digits = e164_digits(number)
    if digits is None:
        return []
    full = "00" + digits
    out: list[Attempt] = []
    for route in select_routes(table, digits, originator, fallback=fallback):
        for gateway in route.carrier.gateways:
            out.append(Attempt(gateway, apply_rules(gateway.rules, full), route.carrier, route))
            if max_attempts is not None and len(out) >= max_attempts:
                return out
    return out




def peer_number(peer: TrustedPeer, user: str) -> str:
    """The number a trusted peer dialled, as routable: strip the peer's ``strip`` leading
    characters, then prepend its ``prefix`` (ngnpro's TrustedPeer ``strip``/``prefix``)."""
    return peer.prefix + user[peer.strip:]
