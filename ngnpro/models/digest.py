"""HTTP Digest authentication (RFC 7616, RFC 8760) for the services that are not SIP: the
XCAP server (ngnpro, RFC 4825 section 9) and the MSRP relay's AUTH (RFC 4976 section 5).

Both check a client against the account's SIP credentials, the stored HA1 of
``ngnpro.models.SipAccount`` (``ha1`` for MD5, ``ha1_sha256`` for SHA-256), so the
clear-text password is never needed.

This is the same code as ``sipproxy/sip/digest.py`` (stateless HMAC-signed nonces that carry
their issue time, a per-nonce replay window, SHA-256 before MD5).  It is a second copy on
purpose: sipproxy's message layer may import only the standard library and is compiled with
mypyc, while the services here may import only ``ngnpro.models``.  tests/foundation checks
that the two copies stay identical below their docstrings.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

#: Algorithms we verify, strongest first (RFC 8760: the order a UAC should prefer).
ALGORITHMS = ("SHA-256", "MD5")
_HASHES = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
}

# auth-param = token "=" ( token / quoted-string ), separated by commas.  The quoted string
# is written as an unrolled loop (runs of plain characters, then an escape): a REGISTER's
# credentials are a few hundred characters, and a per-character alternation was the
# costliest part of checking them.
_PARAM = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^\s,"]*)\s*(?:,|$)', re.S
)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_NC = re.compile(r"[0-9a-fA-F]{8}")
_HEX = re.compile(r"[0-9a-fA-F]+")
# base64.urlsafe_b64encode without its two Python-level calls (nonces are made and checked
# for every challenge and every set of credentials)
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_b2a = binascii.b2a_base64


def _b64(data: bytes) -> str:
    """``base64.urlsafe_b64encode(data).decode("ascii")``."""
    return _b2a(data, newline=False).translate(_URLSAFE).decode("ascii")


def H(algorithm: str, data: str) -> str:
    """The digest hash of RFC 7616 section 3.4 (``H`` / ``KD`` building block)."""
    return _HASHES[algorithm.upper()](data.encode("utf-8")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password): what provisioning stores instead of the password."""
    return H(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    algorithm: str,
    stored_ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str = "",
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The ``response`` value a client must send (RFC 7616 section 3.4.1, RFC 2617 3.2.2)."""
    alg = algorithm.upper()
    h = _HASHES[alg]  # what H(alg, ...) does, looked up once
    a1 = stored_ha1
    if alg.endswith("-SESS"):
        a1 = h(f"{stored_ha1}:{nonce}:{cnonce}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    if qop:
        return h(f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
    return h(f"{a1}:{nonce}:{ha2}".encode()).hexdigest()


def parse_auth_params(value: str) -> tuple[str, dict[str, str]] | None:
    """Split ``Digest k=v, k="v"`` into the scheme and its parameters (names lowercased,
    quoted values unescaped).  ``None`` when the text is not a well-formed challenge or
    credentials line, so a garbled header is refused instead of half-read."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    rest = rest.strip()
    if not scheme or not rest:
        return None
    params = _plain_params(rest) if "\\" not in rest else None
    if params is None:
        params = _regex_params(rest)
    return (scheme, params) if params is not None else None


def _regex_params(rest: str) -> dict[str, str] | None:
    """The parameters of ``rest`` read by the auth-param grammar (``_PARAM``), or ``None``."""
    params: dict[str, str] = {}
    pos = 0
    end = len(rest)
    match = _PARAM.match
    # Each match is anchored where the previous one ended: a search (``finditer``) would
    # try every later start position first, quadratic in the length of a value that fails
    while pos < end:
        m = match(rest, pos)
        if m is None:
            return None
        name, raw = m.group(1, 2)
        name = name.lower()
        if raw[:1] == '"':
            raw = raw[1:-1]
            if "\\" in raw:
                raw = _UNESCAPE.sub(r"\1", raw)
        if name in params:
            return None  # RFC 7616: each parameter at most once
        params[name] = raw
        pos = m.end()
    if pos != len(rest):
        return None
    return params


#: characters of an RFC 3261 ``token``: what an unquoted value may hold on the plain path
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _plain_params(rest: str) -> dict[str, str] | None:
    """The parameters of ``rest`` (no backslash in it) when it is laid out the usual way --
    ``name=token`` or ``name="text"`` items joined by ``", "``, alphanumeric names -- else
    ``None``, and :func:`parse_auth_params` runs its regex.  Why: on the usual layout this
    gives the same answer for a fraction of the regex engine's work.  Anything it does not
    accept (other spacing, a quote or ``", "`` inside a value, a repeated name, an odd
    character) goes to the regex, so both agree on every input (a test compares them)."""
    params: dict[str, str] = {}
    for item in rest.split(", "):
        name, eq, raw = item.partition("=")
        if not eq or not name.isalnum() or not name.isascii():
            return None
        if raw[:1] == '"':
            raw = raw[1:-1]
            if len(item) - len(name) < 3 or item[-1] != '"' or '"' in raw:
                return None
        elif not _TOKEN.issuperset(raw):
            return None
        name = name.lower()
        if name in params:
            return None
        params[name] = raw
    return params


class DigestCredentials(NamedTuple):
    """The parsed ``Authorization`` / ``Proxy-Authorization`` digest parameters.  (A named
    tuple: immutable, and built for every request with credentials -- a frozen dataclass's
    ``__init__`` cost more than the rest of reading them.)"""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str = ""
    nc: str = ""
    cnonce: str = ""
    opaque: str = ""


def parse_credentials(value: str) -> DigestCredentials | None:
    """Parse one credentials header value; ``None`` if it is not usable Digest."""
    parsed = parse_auth_params(value)
    if parsed is None or parsed[0].lower() != "digest":
        return None
    return _credentials(parsed[1])


def _credentials(p: dict[str, str]) -> DigestCredentials | None:
    """Digest credentials from parsed parameters; ``None`` when unusable."""
    try:
        username, realm, nonce, uri, response = p["username"], p["realm"], p["nonce"], p["uri"], p["response"]
    except KeyError:
        return None
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        return None
    qop = p.get("qop", "")
    if qop and qop.lower() != "auth":
        return None  # we only offer qop=auth
    nc, cnonce = p.get("nc", ""), p.get("cnonce", "")
    if qop and (not _NC.fullmatch(nc) or not cnonce):
        return None
    if not _HEX.fullmatch(response):
        return None
    return DigestCredentials(username, realm, nonce, uri, response.lower(), algorithm, qop.lower(), nc, cnonce,
                             p.get("opaque", ""))


# Result statuses.
OK = "ok"
MISSING = "missing"      # no credentials for our realm: challenge
STALE = "stale"          # expired, unknown-to-us-anymore or replayed nonce: challenge stale=true
WRONG = "wrong"          # bad response, unknown user, forged nonce: challenge again
MALFORMED = "malformed"  # unparseable credentials for our realm: 400

#: the ``reason`` of a WRONG result whose response did not match (the client's computation
#: or its password is wrong; a forged nonce or an unknown user are other reasons)
BAD_RESPONSE = "wrong response"


class AuthResult(NamedTuple):
    """What :meth:`DigestAuth.verify` concluded, with the username the client claimed.
    (A named tuple, like :class:`DigestCredentials`: one per authenticated request.)"""

    status: str
    username: str = ""
    algorithm: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


_NO_CREDENTIALS = AuthResult(MISSING, reason="no credentials")  # every first request of a client

#: ``lookup(username, algorithm) -> stored HA1`` or ``None`` for an unknown user / no hash.
HA1Lookup = Callable[[str, str], "str | None"]


def advance_window(top: int, bits: int, nc: int) -> tuple[bool, int, int]:
    """One nonce-count against a replay window: (accepted, new top, new bits).  ``top`` is
    the highest count seen, ``bits`` a bitmap of the 64 counts below and at it (bit 0:
    ``top``), like IPsec's anti-replay window."""
    if nc <= 0:
        return False, top, bits
    if nc > top:
        shift = nc - top
        bits = ((bits << shift) | 1) & 0xFFFFFFFFFFFFFFFF if shift < 64 else 1
        return True, nc, bits
    offset = top - nc
    if offset >= 64 or bits & (1 << offset):
        return False, top, bits
    return True, top, bits | (1 << offset)


class _ReplayWindow:
    """Highest nonce-count seen plus a bitmap of the 64 counts below it; when the nonce was
    issued."""

    __slots__ = ("top", "bits", "issued")

    def __init__(self, issued: int) -> None:
        self.top = 0
        self.bits = 0
        self.issued = issued

    def accept(self, nc: int) -> bool:
        accepted, self.top, self.bits = advance_window(self.top, self.bits, nc)
        return accepted


class NonceCounts:
    """The nonce-counts seen, per nonce in use, in this process: a bounded LRU table of
    replay windows.  A nonce pushed out of it is never accepted again: everything issued at
    or before the newest evicted nonce's time is refused, so bounded memory never opens a
    replay.  ``shared`` False: only the process that issued a nonce may accept it (another
    cannot see its counts).  Worker processes may instead share one table that has the same
    ``consume`` (``shared`` True; sipproxy.auth.nonces)."""

    shared = False

    def __init__(self, max_nonces: int = 100_000, lifetime: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_nonces = max_nonces
        self.lifetime = lifetime
        self._clock = clock
        self._windows: OrderedDict[str, _ReplayWindow] = OrderedDict()
        self._floor = -1  # nonces issued at or before this second were evicted: stale

    def __len__(self) -> int:
        return len(self._windows)

    def consume(self, nonce: str, issued: int, nc: int) -> bool:
        """Whether ``nc`` is new for ``nonce`` (issued at ``issued``), recording it."""
        if nc <= 0:
            return False
        window = self._windows.get(nonce)
        if window is None:
            if issued <= self._floor:
                return False
            self._purge()
            window = self._windows[nonce] = _ReplayWindow(issued)
        else:
            self._windows.move_to_end(nonce)
        return window.accept(nc)

    def _purge(self) -> None:
        """Drop expired nonces, then the least recently used ones beyond ``max_nonces``."""
        limit = self._clock() - self.lifetime
        while self._windows:
            nonce, window = next(iter(self._windows.items()))
            t = window.issued
            if t >= limit and len(self._windows) < self.max_nonces:
                break
            del self._windows[nonce]
            if t >= limit:  # evicted while still valid: never accept it (or older) again
                self._floor = max(self._floor, t)


class CountsTable(Protocol):
    """What :class:`DigestAuth` needs of a nonce-count table (:class:`NonceCounts`)."""

    shared: bool

    def consume(self, nonce: str, issued: int, nc: int) -> bool: ...

    def __len__(self) -> int: ...


class DigestAuth:
    """Issues nonces and verifies digest credentials for one proxy (or a set of workers
    sharing ``secret``: create the secret once, before forking workers)."""

    def __init__(
        self,
        secret: bytes | bytearray | None = None,
        *,
        nonce_lifetime: float = 300.0,
        max_nonces: int = 100_000,
        clock: Callable[[], float] = time.time,
        algorithms: Iterable[str] = ALGORITHMS,
        issuer: str | None = None,
        counts: CountsTable | None = None,
    ) -> None:
        # (bytes or bytearray: any key hmac takes; compiled code checks the declared type)
        self.secret: bytes | bytearray = secret if secret is not None else os.urandom(32)
        self.algorithms = tuple(a.upper() for a in algorithms)
        for alg in self.algorithms:
            if alg not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {alg!r}")
        # Which process's nonce-count table knows a nonce (created after a fork: the pid).
        self.issuer = issuer if issuer is not None else f"{os.getpid():x}"
        self.nonce_lifetime = nonce_lifetime
        self.max_nonces = max_nonces
        self._clock = clock
        #: the nonce-counts seen (``counts``: a table the worker processes share)
        self.counts: CountsTable = counts if counts is not None else NonceCounts(max_nonces, nonce_lifetime, clock)
        self._mac = (self.secret, hmac.new(self.secret, digestmod=hashlib.sha256))

    # -- nonces ---------------------------------------------------------------------------

    def _sign(self, body: str) -> str:
        """HMAC-SHA256 of ``body``, first 18 bytes, base64url.  The keyed HMAC object is made
        once and copied per nonce: ``hmac.digest`` sets OpenSSL's HMAC up for every call,
        which cost more than the hashing itself."""
        secret, mac = self._mac
        if secret is not self.secret:  # the secret was replaced: key a new one
            secret, mac = self._mac = (self.secret, hmac.new(self.secret, digestmod=hashlib.sha256))
        mac = mac.copy()
        mac.update(body.encode("ascii"))
        return _b64(mac.digest()[:18])

    def make_nonce(self) -> str:
        """A fresh signed nonce carrying its issue time."""
        rand = _b64(os.urandom(9))
        body = f"{int(self._clock()):x}.{self.issuer}.{rand}"
        return f"{body}.{self._sign(body)}"

    def _nonce_time(self, nonce: str) -> tuple[int, str] | None:
        """(issue time, issuer) of a nonce we signed, or ``None`` for a forged/foreign one."""
        body, _, mac = nonce.rpartition(".")
        if not body or len(nonce) > 100 or not nonce.isascii():
            return None  # (a client's non-ASCII nonce is not ours; it must not raise)
        if not hmac.compare_digest(mac, self._sign(body)):
            return None
        parts = body.split(".")
        if len(parts) != 3:
            return None
        try:
            return int(parts[0], 16), parts[1]
        except ValueError:
            return None

    # -- challenges -----------------------------------------------------------------------

    def challenge(
        self, realm: str, *, proxy: bool = False, stale: bool = False,
        algorithms: Iterable[str] | None = None,
    ) -> list[tuple[str, str]]:
        """Challenge headers for a 401 (``WWW-Authenticate``) or, with ``proxy``, a 407
        (``Proxy-Authenticate``): one per algorithm (default: ``self.algorithms``, SHA-256
        first as RFC 8760 section 2.4 prefers), all with the same nonce so a client may
        answer either."""
        if algorithms is None:
            algorithms = self.algorithms
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self.make_nonce()
        realm_q = realm.replace("\\", "\\\\").replace('"', '\\"')
        out = []
        for alg in algorithms:
            value = f'Digest realm="{realm_q}", nonce="{nonce}", qop="auth", algorithm={alg}'
            if stale:
                value += ", stale=true"
            out.append((name, value))
        return out

    # -- verification ---------------------------------------------------------------------

    def verify(
        self,
        headers: Iterable[str],
        *,
        method: str,
        realm: str,
        lookup: HA1Lookup,
    ) -> AuthResult:
        """Check the ``Authorization`` (or ``Proxy-Authorization``) values of a request.

        Only credentials for ``realm`` are considered (others belong to other hops).  The
        nonce-count is consumed only when the response is right, so a forged request cannot
        burn a legitimate client's counts."""
        creds = None
        for value in headers:
            parsed = parse_auth_params(value)
            if parsed is None:
                if value.strip()[:7].lower() == "digest ":
                    return AuthResult(MALFORMED, reason="unparseable credentials")
                continue
            if parsed[1].get("realm") != realm:
                continue
            creds = _credentials(parsed[1]) if parsed[0].lower() == "digest" else None
            if creds is None:
                return AuthResult(MALFORMED, parsed[1].get("username", ""), reason="malformed credentials")
            break
        if creds is None:
            return _NO_CREDENTIALS
        stamp = self._nonce_time(creds.nonce)
        if stamp is None:
            return AuthResult(WRONG, creds.username, creds.algorithm, "nonce not ours")
        issued, issuer = stamp
        now = self._clock()
        if now - issued > self.nonce_lifetime or issued > now + 5:
            return AuthResult(STALE, creds.username, creds.algorithm, "nonce expired")
        if issuer != self.issuer and not self.counts.shared:
            return AuthResult(STALE, creds.username, creds.algorithm, "nonce of another worker")
        stored = lookup(creds.username, creds.algorithm.removesuffix("-SESS"))
        if not stored:
            return AuthResult(WRONG, creds.username, creds.algorithm, "unknown user")
        expected = compute_response(
            creds.algorithm, stored.lower(), nonce=creds.nonce, method=method, uri=creds.uri,
            qop=creds.qop, nc=creds.nc, cnonce=creds.cnonce,
        )
        if not hmac.compare_digest(expected, creds.response):
            return AuthResult(WRONG, creds.username, creds.algorithm, BAD_RESPONSE)
        if not self.counts.consume(creds.nonce, issued, int(creds.nc, 16) if creds.qop else 1):
            return AuthResult(STALE, creds.username, creds.algorithm, "nonce-count replayed")
        return AuthResult(OK, creds.username, creds.algorithm)

    @property
    def tracked_nonces(self) -> int:
        return len(self.counts)
