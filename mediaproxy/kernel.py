"""Optional kernel forwarding of locked streams with nftables (``kernel_forwarding = true``).

User space stays in charge: it learns both parties of a stream (symmetric RTP) and only then
hands that one flow to the kernel, the way the reference MediaProxy hands flows to
conntrack.  Per flow (one RTP or RTCP port pair), in a table of this relay's own:

* ``raw`` chains (prerouting for packets from the network, output for local ones) put the
  two exact 4-tuples, party A -> relay port a and party B -> relay port b, into a conntrack
  zone of their own, and count them (a set with per-element counters: the per-direction
  packet and byte counters);
* ``nat`` chains DNAT A's packets to B and SNAT them to come from relay port b.  B's
  packets then match the reply direction of that connection and are NATed back to A, from
  relay port a.

Flows are elements of maps keyed by the 4-tuple, so the per-packet cost does not grow with
the number of flows.

The fresh zone matters: the packets user space relayed before already made conntrack
entries for the same 4-tuples, and NAT is only decided for new connections.  Each install
takes a new zone, so entries left by an earlier install of the same ports never apply.
Packets from any other source match nothing here and still reach the relay's socket, which
drops and counts them (no hijack).  Counters are read back every few seconds into the same
:class:`RelayPort` fields user space updates, so summaries and media timeouts work as before.

Needs root (CAP_NET_ADMIN), the ``nft`` program and IPv4; for parties on other hosts also
``net.ipv4.ip_forward = 1``.  Only IPv4 relays use it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass, field

from .session import RelayPort

log = logging.getLogger("mediaproxy.kernel")

IP_UDP_HEADERS = 28  # IPv4 (no options) + UDP


class KernelError(Exception):
    """nftables is missing or refused a change."""


@dataclass
class Flow:
    """One kernel-forwarded port pair: party A <-> relay port a ... relay port b <-> party B."""

    a: RelayPort
    b: RelayPort
    a_src: tuple
    b_src: tuple
    zone: int
    counted: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> last counters


class KernelPath:
    """The relay's nftables table.  Flows live in maps keyed by the 4-tuple, so a packet
    costs one hash lookup however many flows there are, and a flow is added or removed by
    adding or deleting map elements."""

    KEY = "ip saddr . udp sport . ip daddr . udp dport"

    def __init__(self, relay_ip: str, name: str) -> None:
        self.ip = relay_ip
        self.table = name
        self.nft = shutil.which("nft") or "/usr/sbin/nft"
        self.flows: dict[int, Flow] = {}  # by the port of either side
        self.zone = 0

    def _run(self, script: str | None, *args: str) -> str:
        """``nft ARGS -f -`` with ``script`` on stdin, or ``nft ARGS`` when script is None."""
        cmd = [self.nft, *args] if script is None else [self.nft, *args, "-f", "-"]
        try:
            out = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KernelError(f"nft: {exc}") from None
        if out.returncode != 0:
            raise KernelError(f"nft: {out.stderr.strip().splitlines()[0] if out.stderr.strip() else out.returncode}")
        return out.stdout

    def start(self) -> None:
        k, t = self.KEY, self.table
        # add-then-delete removes a table left by a crashed relay of the same name
        self._run(f"""add table ip {t}
delete table ip {t}
table ip {t} {{
  map zones {{ typeof {k} : ct zone; }}
  set counted {{ typeof {k}; counter; }}
  map dnat4 {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : ipv4_addr . inet_service; }}
  map snat4 {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : ipv4_addr . inet_service; }}
  chain raw_pre {{ type filter hook prerouting priority raw; {k} @counted ct zone set {k} map @zones; }}
  chain raw_out {{ type filter hook output priority raw; {k} @counted ct zone set {k} map @zones; }}
  chain nat_pre {{ type nat hook prerouting priority dstnat; dnat ip to {k} map @dnat4; }}
  chain nat_out {{ type nat hook output priority -100; dnat ip to {k} map @dnat4; }}
  chain nat_post {{ type nat hook postrouting priority srcnat; snat ip to {k} map @snat4; }}
}}
""")

    def close(self) -> None:
        try:
            self._run(None, "delete", "table", "ip", self.table)
        except KernelError as exc:
            log.warning("cannot remove nftables table %s: %s", self.table, exc)
        self.flows.clear()

    # -- flows ---------------------------------------------------------------------------
    def _elements(self, flow: Flow) -> dict[str, list[str]]:
        (ai, ap), (bi, bp), r = flow.a_src, flow.b_src, self.ip
        ka, kb = f"{ai} . {ap} . {r} . {flow.a.port}", f"{bi} . {bp} . {r} . {flow.b.port}"
        return {
            "counted": [ka, kb],
            "zones": [f"{ka} : {flow.zone}", f"{kb} : {flow.zone}"],
            "dnat4": [f"{ka} : {bi} . {bp}"],
            "snat4": [f"{ai} . {ap} . {bi} . {bp} : {r} . {flow.b.port}"],
        }

    @staticmethod
    def _key(addr: tuple, port: int, relay: str) -> str:
        return f"{addr[0]}.{addr[1]}.{relay}.{port}"

    def install(self, pairs: list[tuple[RelayPort, RelayPort]]) -> int:
        """Hand these port pairs (both parties learned) to the kernel; returns how many."""
        flows, lines = [], []
        for a, b in pairs:
            if a.port in self.flows or b.port in self.flows or not a.learned or not b.learned:
                continue
            self.zone = self.zone % 65000 + 1
            flow = Flow(a, b, a.learned[:2], b.learned[:2], self.zone)
            flows.append(flow)
            lines += [f"add element ip {self.table} {name} {{ {', '.join(elems)} }}"
                      for name, elems in self._elements(flow).items()]
        if not flows:
            return 0
        self._run("\n".join(lines) + "\n")
        for flow in flows:
            self.flows[flow.a.port] = self.flows[flow.b.port] = flow
            log.debug("kernel forwards %s <-> %s via ports %d/%d", flow.a_src, flow.b_src, flow.a.port, flow.b.port)
        return len(flows)

    def uninstall(self, ports: list[int]) -> None:
        """Take these ports' flows back to user space (stream closed, party moved)."""
        lines, done = [], set()
        for port in ports:
            flow = self.flows.get(port)
            if flow is None or id(flow) in done:
                continue
            done.add(id(flow))
            self.flows.pop(flow.a.port, None)
            self.flows.pop(flow.b.port, None)
            lines += [f"delete element ip {self.table} {name} {{ {', '.join(e.split(' : ')[0] for e in elems)} }}"
                      for name, elems in self._elements(flow).items()]
        if lines:
            self._run("\n".join(lines) + "\n")

    def stale(self) -> list[int]:
        """Ports whose flow no longer matches what user space knows (re-learned, closed)."""
        out = []
        for port, flow in self.flows.items():
            if port != flow.a.port:
                continue
            if (flow.a.sock is None or flow.b.sock is None or not flow.a.learned or not flow.b.learned
                    or flow.a.learned[:2] != flow.a_src or flow.b.learned[:2] != flow.b_src):
                out.append(port)
        return out

    def poll(self, now: float) -> None:
        """Add the kernel's per-direction counters since the last poll to the relay ports."""
        if not self.flows:
            return
        try:
            data = json.loads(self._run(None, "-j", "list", "set", "ip", self.table, "counted"))
        except (KernelError, ValueError) as exc:
            log.warning("cannot read kernel counters: %s", exc)
            return
        counters: dict[str, tuple[int, int]] = {}
        for item in data.get("nftables", []):
            for elem in (item.get("set") or {}).get("elem", []):
                e = elem.get("elem", {})
                parts = (e.get("val") or {}).get("concat")
                counter = e.get("counter")
                if parts and counter:
                    counters[".".join(str(x) for x in parts)] = (counter["packets"], counter["bytes"])
        for port, flow in self.flows.items():
            if port != flow.a.port:
                continue
            for target, src in ((flow.a, flow.a_src), (flow.b, flow.b_src)):
                key = self._key(src, target.port, self.ip)
                packets, octets = counters.get(key, (0, 0))
                old_p, old_b = flow.counted.get(key, (0, 0))
                if packets > old_p:
                    target.packets += packets - old_p
                    # nftables counts IP packets; user space counts UDP payload
                    target.bytes += (octets - old_b) - IP_UDP_HEADERS * (packets - old_p)
                    target.last = now
                    flow.counted[key] = (packets, octets)
