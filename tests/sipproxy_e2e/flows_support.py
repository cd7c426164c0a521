"""Support of test_sipproxy_e2e_flows.py: the provisioned platform (who is at which
loopback address: see that module's text) and the sipp helpers its tests share."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ngnpro import dns_port, enum_port
from ngnpro import sip_pstn as pstn
from ngnpro.dns_types import DnsRecord, DnsZone
from ngnpro.enum_types import EnumId, EnumMapping, EnumNumber, EnumRange, EnumRangeId
from ngnpro.models import SipAccount, SipDomain
from ngnpro.models.database import open_database
from ngnpro.models.sip import EmergencyMapping, SipAccountGroup
from ngnpro.pstn_types import Carrier, Gateway, GatewayRule, Route, TrustedPeer
from ngnpro.soap.context import Scope
from tests.helpers import Service
from tests.sipproxy_e2e.sipp_support import DOMAIN, ProxyProcess, Sipp, auth_row

ADMIN = Scope(admin=True)

GW_FIRST, GW_SECOND, GW_INCOMING = "127.0.0.11", "127.0.0.12", "127.0.0.13"
GW_NAMED = "127.0.0.14"  # carrier "named": gateway gw.carrier.test (A record in our DNS)
GW_PEER = "127.0.0.15"  # carrier "incoming"'s gateway also provisioned as a trusted peer
PBX_A, PBX_B = "127.0.0.21", "127.0.0.22"
PBX_T = "127.0.0.23"  # a trusted peer allowed PSTN transit, originator "pbx-t"
FAR_1, FAR_2 = "127.0.0.31", "127.0.0.32"
TCP_SERVER = "127.0.0.33"  # tcp.test: NAPTR SIP+D2T -> SRV _sip._tcp

#: subscriber -> (password, groups, rpid, region, quick dial prefix)
ACCOUNTS = {
    "alice": ("secret-a", ["free-pstn"], "+31201110001", "north", ""),
    "bob": ("secret-b", [], "", "south", ""),
    "carol": ("secret-c", [], "", "", ""),
    "dave": ("secret-d", [], "", "", ""),
    "frank": ("secret-f", [], "", "", ""),
    "gina": ("secret-g", [], "", "", ""),
    "31208005169": ("secret-q1", [], "", "", "312080051"),
    "31208005160": ("secret-q2", [], "", "", ""),
    # a range of three-digit extensions, one of them 112
    "31208005170": ("secret-q3", [], "", "north", "31208005"),
    "31208005112": ("secret-q4", [], "", "", ""),
    "erin": ("secret-e", [], "", "east", ""),
}

NATIONAL = "0201234567"  # a national number: +31201234567, nobody's here
TO_CAROL = "+31205550100"  # ENUM: sip:carol@example.com
TO_DAVE = "+31205550101"  # ENUM: sip:dave@example.com
TO_GINA_NATIONAL = "0205550102"  # ENUM (+31205550102): sip:gina@example.com, never registered
TO_PBX_B = "+31301234567"  # ENUM: sip:sales@pbx-b.test
NOBODY = "+31209999999"  # in our ENUM range, not provisioned
SOS_NUMBER = "0201112112"  # the default region's emergency destination: +31201112112


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Platform:
    proxy: ProxyProcess
    dns: Service
    ports: dict[str, int]
    db_url: str
    mark: int = 0

    @property
    def port(self) -> int:
        return self.proxy.port

    def since(self) -> str:
        """The proxy's log written during this test."""
        return self.proxy.output()[self.mark:]


def _do(sessions, fn, *args) -> object:
    with sessions() as s:
        result = fn(s, ADMIN, *args)
        s.commit()
        return result


def provision(url: str, ports: dict[str, int]) -> None:
    engine, sessions = open_database(url)
    try:
        with sessions() as s, s.begin():
            s.add(SipDomain(domain=DOMAIN))
            s.flush()
            for user, (pw, groups, rpid, region, quickdial) in ACCOUNTS.items():
                s.add(SipAccount(
                    username=user, domain=DOMAIN, ha1=_md5(f"{user}:{DOMAIN}:{pw}"),
                    ha1b=_md5(f"{user}@{DOMAIN}:{DOMAIN}:{pw}"),
                    ha1_sha256=hashlib.sha256(f"{user}:{DOMAIN}:{pw}".encode()).hexdigest(),
                    rpid=rpid, region=region, quickdial_prefix=quickdial,
                    groups=[SipAccountGroup(name=g) for g in groups]))
            for region in ("north", "south"):
                s.add(EmergencyMapping(region=region, number="112",
                                       destination=f"sip:sos-{region}@127.0.0.1:{ports['sos-' + region]}"))
            # the default region's: a number, in national form, to the PSTN
            s.add(EmergencyMapping(region="", number="112", destination=SOS_NUMBER))
        # the PSTN: two carriers for 0031 (the first preferred), a gateway for incoming calls
        for name in ("first", "second", "incoming", "named"):
            _do(sessions, pstn.add_carrier, Carrier(name=name))
        carriers = {c.name: c.id for c in _do(sessions, pstn.get_carriers, None).carriers}
        for name, ip, port in (("first", GW_FIRST, ports["gw-first"]), ("second", GW_SECOND, ports["gw-second"]),
                               ("incoming", GW_INCOMING, 5060), ("incoming", GW_PEER, 5060),
                               ("named", "gw.carrier.test", ports["gw-named"])):
            _do(sessions, pstn.add_gateway, Gateway(name=f"gw-{name}-{ip}", carrier_id=carriers[name], ip=ip,
                                                    port=port))
        gateways = {g.name: g.id for g in _do(sessions, pstn.get_gateways, None).gateways}
        _do(sessions, pstn.add_rule, GatewayRule(gateway_id=gateways[f"gw-second-{GW_SECOND}"], prefix="0031", strip=2,
                                                 prepend="99"))
        _do(sessions, pstn.add_routes, [Route(carrier_id=carriers["first"], prefix="0031", priority=10),
                                        Route(carrier_id=carriers["second"], prefix="0031", priority=20),
                                        Route(carrier_id=carriers["named"], prefix="0049", priority=10),
                                        Route(carrier_id=carriers["named"], prefix="0044", originator="pbx-t")])
        _do(sessions, pstn.add_peer, TrustedPeer(ip=PBX_A, description="PBX A", enumLookup=True, transit=False))
        _do(sessions, pstn.add_peer, TrustedPeer(ip=GW_PEER, description="PSTN gateway, PBX numbers too"))
        _do(sessions, pstn.add_peer, TrustedPeer(ip=PBX_T, description="PBX T", enumLookup=True, transit=True,
                                                 originator="pbx-t"))
        # ENUM
        _do(sessions, enum_port.add_range, EnumRange(id=EnumRangeId(prefix="31", tld="e164.arpa"), ttl=60))
        for number, uri in ((TO_CAROL, "sip:carol@example.com"), (TO_DAVE, "sip:dave@example.com"),
                            ("+31205550102", "sip:gina@example.com"), (TO_PBX_B, "sip:sales@pbx-b.test")):
            _do(sessions, enum_port.add_number, EnumNumber(
                id=EnumId(number=number, tld="e164.arpa"),
                mappings=[EnumMapping(type="sip", mapto=uri, ttl=60, priority=10)]))
        # DNS of the other domains: PBX B by SRV, far.test by two SRV priorities
        for zone in ("pbx-b.test", "far.test", "tcp.test", "carrier.test"):
            _do(sessions, dns_port.add_zone, DnsZone(name=zone, ttl=60, nameservers=[f"ns.{zone}"]))
        for zone, name, rtype, value, priority in (
                ("pbx-b.test", "_sip._udp", "SRV", f"0 {ports['pbx-b']} sip.pbx-b.test", 10),
                ("pbx-b.test", "sip", "A", PBX_B, None),
                ("far.test", "_sip._udp", "SRV", f"0 {ports['far-1']} s1.far.test", 10),
                ("far.test", "_sip._udp", "SRV", f"0 {ports['far-2']} s2.far.test", 20),
                ("far.test", "s1", "A", FAR_1, None),
                ("far.test", "s2", "A", FAR_2, None),
                ("tcp.test", "", "NAPTR", '10 10 "s" "SIP+D2T" "" _sip._tcp.tcp.test', 10),
                ("tcp.test", "_sip._tcp", "SRV", f"0 {ports['tcp']} sip.tcp.test", 10),
                ("tcp.test", "sip", "A", TCP_SERVER, None),
                ("carrier.test", "gw", "A", GW_NAMED, None)):
            _do(sessions, dns_port.add_record, DnsRecord(zone=zone, name=name, type=rtype, value=value,
                                                         priority=priority, ttl=60))
    finally:
        engine.dispose()


# -- helpers -------------------------------------------------------------------------------


def _ok(*sipps: Sipp, net: Platform) -> None:
    """Every sipp ends its scenario successfully (the others are stopped at the first that
    does not)."""
    try:
        for sipp in sipps:
            rc = sipp.wait()
            assert rc == 0, f"sipp {sipp.name} exited {rc}\n{sipp.report()}\n--- proxy\n{net.since()[-8000:]}"
    finally:
        for sipp in sipps:
            sipp.kill()


def _register(tmp: Path, net: Platform, user: str, name: str = "reg") -> int:
    reg = Sipp(tmp, name, "e2e_register.xml", net.port, rows=[auth_row(user, ACCOUNTS[user][0])])
    _ok(reg, net=net)
    return reg.port


def _subscriber_call(tmp: Path, net: Platform, user: str, to_user: str, to_domain: str = DOMAIN,
                     extra: str = "X-Flow: subscriber", name: str = "uac", uri: str = "") -> Sipp:
    """A call of subscriber ``user`` to ``to_user@to_domain`` (or to ``uri``, a tel: URI)."""
    uri = uri or f"sip:{to_user}@{to_domain}"
    row = f"{user};{DOMAIN};[authentication username={user} password={ACCOUNTS[user][0]}];{uri};{extra}"
    return Sipp(tmp, name, "flow_uac.xml", net.port, rows=[row])


def _plain_call(tmp: Path, net: Platform, scenario: str, from_uri: str, to_uri: str, *, ip: str = "127.0.0.1",
                extra: str = "X-Flow: plain", name: str = "uac") -> Sipp:
    from_user, from_domain = from_uri.split("@")
    to_user, to_domain = to_uri.split("@")
    return Sipp(tmp, name, scenario, net.port, ip=ip,
                rows=[f"{from_user};{from_domain};{to_user};{to_domain};{extra}"])


def _uas(tmp: Path, net: Platform, name: str, ip: str, port: int, scenario: str = "e2e_uas.xml",
         transport: str = "u1") -> Sipp:
    return Sipp(tmp, name, scenario, net.port, ip=ip, port=port, server=True, timeout=20, transport=transport)


def _received(sipp: Sipp, method: str = "INVITE") -> list[str]:
    """The header blocks of the ``method`` requests a sipp received (its message trace)."""
    trace = (sipp.tmp / f"{sipp.name}.msg").read_text(errors="replace").replace("\r\n", "\n")
    return [m.group(0) for m in re.finditer(rf"^{method} [^\n]*\n(?:[^\n]+\n)*", trace, re.M)]


def _header(block: str, name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in block.splitlines()[1:]
            if line.split(":", 1)[0].strip().lower() == name.lower()]


def _ruri(block: str) -> str:
    return block.split("\n", 1)[0].split()[1]


def _subscriber_refused(tmp: Path, net: Platform, user: str, to_user: str, to_domain: str = DOMAIN) -> str:
    """The final answer (status and reason) to a call of subscriber ``user`` that must fail
    once authenticated."""
    row = f"{user};{DOMAIN};[authentication username={user} password={ACCOUNTS[user][0]}];{to_user};{to_domain}"
    uac = Sipp(tmp, f"uac-{user}", "flow_uac_auth_refused.xml", net.port, rows=[row])
    _ok(uac, net=net)
    assert {cseq for cseq, _ in uac.finals()} == {"1 INVITE", "2 INVITE"}, uac.report()
    (answer,) = _answers(uac) - {a for a in _answers(uac) if a.startswith("407 ")}
    return answer


def _answers(sipp: Sipp) -> set[str]:
    """The status lines of the final answers a sipp received ("403 Relaying Denied")."""
    trace = (sipp.tmp / f"{sipp.name}.msg").read_text(errors="replace")
    return {m.group(1) for m in re.finditer(r"^SIP/2\.0 ([2-6][0-9][0-9] [^\r\n]*)", trace, re.M)}


def _refused(tmp: Path, net: Platform, from_uri: str, to_uri: str, *, ip: str = "127.0.0.1",
             name: str = "uac") -> set[str]:
    """The final answers (status and reason) to an INVITE from ``from_uri`` at ``ip`` that
    must fail."""
    uac = _plain_call(tmp, net, "flow_uac_refused.xml", from_uri, to_uri, ip=ip, name=name)
    _ok(uac, net=net)
    assert len(uac.finals()) == 1, uac.report()
    return _answers(uac)


# -- 1. end-point to PSTN through LCR ----------------------------------------------------


