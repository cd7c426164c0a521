"""DNS for the proxy's routing: ENUM and RFC 3263 look-ups on dnspython, cached for their TTL.

:class:`DnsResolver` implements :class:`sipproxy.routing.resolver.Resolver` (``enum``,
``locate``, ``address``) and :class:`sipproxy.routing.resolver.DnsLookup` (``naptr``,
``srv``, ``address``), which is what the pure decisions of :mod:`sipproxy.routing.enum` and
:mod:`sipproxy.routing.locate` are fed with.

* ENUM queries go to ``[sipproxy] enum_servers`` (empty: the ``[enumdns] listen``
  address), one NAPTR query per tree of ``[enumdns] enum_tlds``, in order, until one gives
  a SIP URI;
* RFC 3263 queries (NAPTR, SRV, A, AAAA) go to ``[sipproxy] dns_servers`` (empty: the
  system's: the name servers of /etc/resolv.conf, and /etc/hosts for addresses, read once);
* each query waits at most ``[sipproxy] dns_timeout`` seconds per server (over UDP, and
  again over TCP when the answer is truncated); the servers are asked in order, the next
  when one times out or fails (SERVFAIL, REFUSED ...), so a look-up waits at most
  ``dns_timeout`` times the number of servers (twice that with a TCP retry);
* answers are cached (:class:`DnsCache`: at most ``[sipproxy] dns_cache_size`` entries, the
  least recently used dropped first) for their TTL, at most ``MAX_TTL``; a negative answer
  (NXDOMAIN, no data) for its SOA's negative TTL (RFC 2308), at most ``MAX_NEGATIVE_TTL``;
  no answer at all (every server timed out or failed) for ``FAILURE_TTL``; a server that
  timed out is skipped for ``SERVER_DOWN`` seconds (while it is, a look-up that has no
  other server fails at once), so that a dead server does not hold up every call.  Addresses of SRV targets in an answer's additional
  section are cached with it (RFC 3263 4.2: they spare the next query);
* concurrent greenlets asking the same question share one query.

Sockets are the standard library's, which gevent's monkey-patching (done by
``python -m sipproxy`` before anything else) makes cooperative: a greenlet waiting for DNS
lets the others run.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import gevent
from gevent import socket as gsocket
from gevent.event import AsyncResult

from sipproxy.routing.enum import enum_domains, sip_uris
from sipproxy.routing.locate import locate as locate_uri
from sipproxy.routing.numbers import is_e164
from sipproxy.routing.resolver import Naptr, Srv
from sipproxy.sip.addressing import TRANSPORTS, Peer, is_ip
from sipproxy.sip.uri import URI

log = logging.getLogger("sipproxy.dns")

__all__ = ["DnsCache", "DnsClient", "DnsResolver", "MAX_TTL", "MAX_NEGATIVE_TTL", "FAILURE_TTL"]

#: longest an answer is kept, whatever its TTL (seconds)
MAX_TTL = 3600
#: longest a "no such name / no such record" answer is kept (seconds)
MAX_NEGATIVE_TTL = 60
#: how long "no server answered" is kept (seconds)
FAILURE_TTL = 2.0
#: how long a server that timed out is skipped (seconds): a dead server costs one timeout,
#: not one per query of every look-up
SERVER_DOWN = 5.0
#: EDNS payload size we announce (the DNS flag day 2020 value)
EDNS_PAYLOAD = 1232

A, AAAA, NAPTR, SRV = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.NAPTR, dns.rdatatype.SRV

_MISSING = object()


class DnsCache:
    """Answers by key, each until its expiry; at most ``size`` of them (LRU)."""

    def __init__(self, size: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(1, size)
        self.clock = clock
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any) -> Any:
        """The cached value, or ``_MISSING`` (absent or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISSING
        if entry[0] <= self.clock():
            del self._entries[key]
            return _MISSING
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class DnsClient:
    """Queries to one list of servers (``(ip, port)``), answers cached.

    ``lookup(name, rdtype)`` answers the rdata of the name's records of that type ([] when
    none, or when no server answered); it never raises.  ``queries`` counts the queries
    sent (UDP and TCP), ``failures`` the look-ups no server answered."""

    def __init__(self, servers: Iterable[tuple[str, int]], timeout: float = 1.0,
                 cache: DnsCache | None = None, tag: str = "dns") -> None:
        self.servers = list(servers)
        self.timeout = timeout
        self.cache = cache if cache is not None else DnsCache()
        self.tag = tag
        self.queries = 0
        self.failures = 0
        self._inflight: dict[tuple, AsyncResult] = {}
        #: server -> until when it is skipped (it timed out)
        self._down: dict[tuple[str, int], float] = {}

    def lookup(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[Any]:
        name = name.rstrip(".").lower()
        key = (self.tag, name, rdtype)
        cached = self.cache.get(key)
        if cached is not _MISSING:
            return list(cached)
        pending = self._inflight.get(key)
        if pending is not None:  # another greenlet is asking the same: share its answer
            try:
                return list(pending.get(timeout=self.timeout * max(1, len(self.servers)) * 2 + 1))
            except gevent.Timeout:
                return []
        pending = self._inflight[key] = AsyncResult()
        records: list[Any] = []
        try:
            records = self._query(name, rdtype, key)
        except Exception:  # never raise into routing: log it, answer nothing
            log.exception("DNS look-up of %s %s failed", name, dns.rdatatype.to_text(rdtype))
        finally:
            del self._inflight[key]
            pending.set(records)
        return list(records)  # a copy: the cached answer stays as it came

    def _query(self, name: str, rdtype: dns.rdatatype.RdataType, key: tuple) -> list[Any]:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return []
        query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        now = self.cache.clock()
        for server in self.servers:
            if self._down.get(server, 0.0) > now:
                continue  # timed out a moment ago: not again while it is down
            host, port = server
            self.queries += 1
            try:
                response, tcp = dns.query.udp_with_fallback(query, host, timeout=self.timeout, port=port)
            except (dns.exception.DNSException, OSError, ValueError, EOFError) as exc:
                log.debug("DNS %s %s to %s:%d: %s", name, dns.rdatatype.to_text(rdtype), host, port,
                          type(exc).__name__)
                if isinstance(exc, dns.exception.Timeout):
                    self._down[server] = self.cache.clock() + SERVER_DOWN
                continue
            self._down.pop(server, None)
            if tcp:
                self.queries += 1
            rcode = response.rcode()
            if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                log.debug("DNS %s %s to %s:%d: %s", name, dns.rdatatype.to_text(rdtype), host, port,
                          dns.rcode.to_text(rcode))
                continue
            try:
                chain = response.resolve_chaining()
            except dns.exception.DNSException as exc:
                log.debug("DNS %s: unusable answer from %s:%d: %s", name, host, port, exc)
                continue
            records = list(chain.answer) if chain.answer is not None else []
            if records:
                ttl = min(chain.minimum_ttl, MAX_TTL)
            else:
                ttl = min(chain.minimum_ttl, MAX_NEGATIVE_TTL)
            if rdtype == SRV and records:
                self._cache_glue(response, records)
            self.cache.put(key, records, ttl)
            return records
        self.failures += 1
        log.warning("DNS %s %s: no answer from %s", name, dns.rdatatype.to_text(rdtype),
                    ", ".join(f"{h}:{p}" for h, p in self.servers) or "no server")
        self.cache.put(key, [], FAILURE_TTL)
        return []

    def _cache_glue(self, response: dns.message.Message, srvs: list[Any]) -> None:
        """Addresses of the SRV targets from the additional section (RFC 3263 4.2)."""
        targets = {rd.target for rd in srvs}
        for rrset in response.additional:
            if rrset.rdtype in (A, AAAA) and rrset.name in targets and len(rrset):
                name = rrset.name.to_text(omit_final_dot=True).lower()
                self.cache.put((self.tag, name, rrset.rdtype), list(rrset), min(rrset.ttl, MAX_TTL))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _name(name: dns.name.Name) -> str:
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True)


def to_naptr(rd: Any) -> Naptr:
    return Naptr(rd.order, rd.preference, _text(rd.flags), _text(rd.service), _text(rd.regexp),
                 _name(rd.replacement))


def to_srv(rd: Any) -> Srv:
    return Srv(rd.priority, rd.weight, rd.port, _name(rd.target))


class DnsResolver:
    """The proxy's DNS (see the module's text): implements
    :class:`sipproxy.routing.resolver.Resolver` and :class:`~sipproxy.routing.resolver.DnsLookup`.

    ``hosts``: names answered without DNS (the system's /etc/hosts when ``dns_servers`` is
    empty).  ``transports``: the ones the proxy listens on (RFC 3263 chooses only among
    them)."""

    def __init__(self, enum_servers: Iterable[tuple[str, int]], dns_servers: Iterable[tuple[str, int]],
                 enum_tlds: Iterable[str] = ("e164.arpa",), *, timeout: float = 1.0,
                 cache_size: int = 10000, hosts: dict[str, list[str]] | None = None,
                 rng: random.Random | None = None, transports: Collection[str] = TRANSPORTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = DnsCache(cache_size, clock)
        self.enum_client = DnsClient(enum_servers, timeout, self.cache, "enum")
        self.dns_client = DnsClient(dns_servers, timeout, self.cache, "dns")
        self.enum_tlds = [t.strip(".").lower() for t in enum_tlds]
        self.hosts = {k.lower(): v for k, v in (hosts or {}).items()}
        self.rng = rng or random.Random()
        self.transports = frozenset(transports)

    @classmethod
    def from_config(cls, config: Any, transports: Collection[str] = TRANSPORTS) -> DnsResolver:
        """From the platform configuration (:class:`ngnpro.models.config.Config`)."""
        section = config["sipproxy"]
        enum_servers = [_server(s, "sipproxy.enum_servers") for s in section["enum_servers"]]
        if not enum_servers:
            enum_servers = [_server(config["enumdns"]["listen"], "enumdns.listen")]
        dns_servers = [_server(s, "sipproxy.dns_servers") for s in section["dns_servers"]]
        hosts = None
        if not dns_servers:
            dns_servers = system_servers()
            hosts = read_hosts()
        return cls(enum_servers, dns_servers, config["enumdns"]["enum_tlds"],
                   timeout=section["dns_timeout"], cache_size=section["dns_cache_size"],
                   hosts=hosts, transports=transports)

    @property
    def queries(self) -> int:
        """Queries sent, ENUM and RFC 3263 together."""
        return self.enum_client.queries + self.dns_client.queries

    # -- Resolver ------------------------------------------------------------------------

    def enum(self, e164: str) -> list[str]:
        if not is_e164(e164):
            return []
        for domain in enum_domains(e164, self.enum_tlds):
            records = [to_naptr(rd) for rd in self.enum_client.lookup(domain, NAPTR)]
            uris = sip_uris(records, e164)
            if uris:
                return uris
        return []

    def locate(self, uri: URI) -> list[Peer]:
        return locate_uri(uri, self, self.rng, self.transports)

    def address(self, host: str) -> list[str]:
        host = host.strip("[]").rstrip(".").lower()
        if not host:
            return []
        if is_ip(host):
            return [host]
        known = self.hosts.get(host)
        if known:
            return list(known)
        found = [rd.address for rd in self.dns_client.lookup(host, A)]
        if not found:  # IPv6 only when there is no IPv4 address
            found = [rd.address for rd in self.dns_client.lookup(host, AAAA)]
        return found

    # -- DnsLookup -----------------------------------------------------------------------

    def naptr(self, name: str) -> list[Naptr]:
        return [to_naptr(rd) for rd in self.dns_client.lookup(name, NAPTR)]

    def srv(self, name: str) -> list[Srv]:
        return [to_srv(rd) for rd in self.dns_client.lookup(name, SRV)]


def _server(text: str, key: str) -> tuple[str, int]:
    """``HOST:PORT`` (validated by the config) -> ``(ip, port)``: a wildcard listen address
    becomes the loopback, a host name its address (once, at start)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    elif not is_ip(host):
        try:
            host = gsocket.getaddrinfo(host, int(port), type=gsocket.SOCK_DGRAM)[0][4][0]
        except OSError as exc:
            raise ValueError(f"{key}: cannot resolve {host!r}: {exc}") from None
    return host, int(port)


def system_servers() -> list[tuple[str, int]]:
    """The name servers of /etc/resolv.conf (127.0.0.1 when there is none)."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return [("127.0.0.1", 53)]
    servers = []
    for ns in resolver.nameservers:
        address = str(ns)
        if is_ip(address):
            servers.append((address, resolver.port))
    return servers or [("127.0.0.1", 53)]


def read_hosts(path: str = "/etc/hosts") -> dict[str, list[str]]:
    """Name -> addresses of a hosts file (IPv4 first); {} when it cannot be read."""
    hosts: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return hosts
    for line in lines:
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ipaddress.ip_address(fields[0].partition("%")[0])
        except ValueError:
            continue
        for name in fields[1:]:
            known = hosts.setdefault(name.lower().rstrip("."), [])
            if str(address) not in known:
                known.append(str(address))
    for known in hosts.values():
        known.sort(key=lambda a: ":" in a)
    return hosts
