"""PIKE flood detection (like Kamailio's pike module), sans-I/O: the decision only.

A source IP that sends more than ``requests`` requests within ``window`` seconds is
blocked for ``block`` seconds: its requests are dropped (no answer, as Kamailio's pike
does -- an answer would feed the flood and confirm a target), and the edge logs the block
once, when it starts.  Trusted peers and the ``exempt`` addresses (IPs or networks) are
never counted.

The rate is a sliding window counter: the current window's count plus the previous
window's, weighted by how much of it still overlaps the last ``window`` seconds -- two
numbers per address, whatever the rate.  Addresses idle for two windows are forgotten
(checked once per window), and at most ``capacity`` addresses are tracked.

The edge (:mod:`sipproxy.runtime.edge`) asks :meth:`Pike.check` for each request it
receives, before parsing it; responses are not counted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

__all__ = ["Pike", "PASS", "BLOCK", "DROP"]

#: the request may go on
PASS = 0
#: the source just went over the limit: drop, and log that it is blocked
BLOCK = 1
#: the source is blocked: drop silently
DROP = 2


class Pike:
    """The per-source request rate check."""

    def __init__(self, requests: int, window: float, block: float, *, exempt: Iterable[str] = (),
                 trusted: Callable[[str], bool] | None = None, capacity: int = 100_000) -> None:
        if requests <= 0 or window <= 0:
            raise ValueError("pike needs requests > 0 and window > 0")
        self.requests = requests
        self.window = float(window)
        self.block = float(block)
        self.trusted = trusted
        self.capacity = capacity
        self._exempt_ips: set[str] = set()
        self._exempt_nets: list = []
        for entry in exempt:
            net = ipaddress.ip_network(entry.strip(), strict=False)
            if net.num_addresses == 1:
                self._exempt_ips.add(str(net.network_address))
            else:
                self._exempt_nets.append(net)
        #: ip -> [start of its current window, count in it, count in the previous one]
        self._rates: dict[str, list] = {}
        #: ip -> when its block ends
        self.blocked: dict[str, float] = {}
        self._next_sweep = 0.0
        self.drops = 0

    def exempt(self, ip: str) -> bool:
        if ip in self._exempt_ips:
            return True
        if self._exempt_nets:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            if any(addr.version == n.version and addr in n for n in self._exempt_nets):
                return True
        return self.trusted is not None and self.trusted(ip)

    def check(self, ip: str, now: float) -> int:
        """:data:`PASS`, :data:`BLOCK` (this request went over the limit) or :data:`DROP`."""
        if now >= self._next_sweep:
            self._sweep(now)
        until = self.blocked.get(ip)
        if until is not None:
            if now < until:
                self.drops += 1
                return DROP
            del self.blocked[ip]
        rate = self._rates.get(ip)
        window = self.window
        if rate is None:
            if self.exempt(ip):
                return PASS
            if len(self._rates) >= self.capacity:
                self._rates.clear()  # a spoofed-source storm: start counting afresh
            self._rates[ip] = [now, 1, 0]
            return PASS if self.requests >= 1 else BLOCK
        start = rate[0]
        elapsed = now - start
        if elapsed >= window:
            periods = int(elapsed // window)
            rate[2] = rate[1] if periods == 1 else 0
            rate[1] = 0
            start = rate[0] = start + periods * window
            elapsed = now - start
        rate[1] += 1
        estimate = rate[1] + rate[2] * (1.0 - elapsed / window)
        if estimate > self.requests:
            self.blocked[ip] = now + self.block
            del self._rates[ip]
            self.drops += 1
            return BLOCK
        return PASS

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.window
        idle = now - 2 * self.window
        for ip in [ip for ip, rate in self._rates.items() if rate[0] < idle]:
            del self._rates[ip]
        for ip in [ip for ip, until in self.blocked.items() if until <= now]:
            del self.blocked[ip]

    def tracked(self) -> int:
        return len(self._rates)
