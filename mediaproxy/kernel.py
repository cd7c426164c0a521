"""Optional kernel forwarding of locked streams with nftables (``kernel_forwarding = true``).

User space stays in charge: it learns both parties of a stream (symmetric RTP) and only then
hands that one flow to the kernel, the way the reference MediaProxy hands flows to
conntrack.  Per flow (one RTP or RTCP port pair), in a table of this relay's own:

* ``raw`` chains (prerouting for packets from the network, output for local ones) put the
  two exact 4-tuples, party A -> relay port a and party B -> relay port b, into a conntrack
  zone of their own, and count them (the per-direction packet and byte counters);
* ``nat`` chains DNAT A's packets to B and SNAT them to come from relay port b.  B's
  packets then match the reply direction of that connection and are NATed back to A, from
  relay port a.

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
    """One kernel-forwarded port pair and its nftables rule handles."""

    a: RelayPort
    b: RelayPort
    a_src: tuple
    b_src: tuple
    zone: int
    handles: dict[str, list[int]] = field(default_factory=dict)
    counted: dict[int, tuple[int, int]] = field(default_factory=dict)  # handle -> last counters


class KernelPath:
    CHAINS = {
        "raw_pre": "type filter hook prerouting priority raw;",
        "raw_out": "type filter hook output priority raw;",
        "nat_pre": "type nat hook prerouting priority dstnat;",
        "nat_out": "type nat hook output priority -100;",
        "nat_post": "type nat hook postrouting priority srcnat;",
    }

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
        chains = "\n".join(f"  chain {c} {{ {spec} }}" for c, spec in self.CHAINS.items())
        # add-then-delete removes a table left by a crashed relay of the same name
        self._run(f"add table ip {self.table}\ndelete table ip {self.table}\n"
                  f"table ip {self.table} {{\n{chains}\n}}\n")

    def close(self) -> None:
        try:
            self._run(f"delete table ip {self.table}\n")
        except KernelError as exc:
            log.warning("cannot remove nftables table %s: %s", self.table, exc)
        self.flows.clear()

    # -- flows ---------------------------------------------------------------------------
    def install(self, pairs: list[tuple[RelayPort, RelayPort]]) -> int:
        """Hand these port pairs (both parties learned) to the kernel; returns how many."""
        flows, lines = [], []
        for a, b in pairs:
            if a.port in self.flows or b.port in self.flows or not a.learned or not b.learned:
                continue
            self.zone = self.zone % 65000 + 1
            flow = Flow(a, b, a.learned[:2], b.learned[:2], self.zone)
            (ai, ap), (bi, bp), r = flow.a_src, flow.b_src, self.ip
            match_a = f"ip saddr {ai} udp sport {ap} ip daddr {r} udp dport {a.port}"
            match_b = f"ip saddr {bi} udp sport {bp} ip daddr {r} udp dport {b.port}"
            rules = [
                ("raw_pre", f"{match_a} counter ct zone set {flow.zone}"),
                ("raw_out", f"{match_a} counter ct zone set {flow.zone}"),
                ("raw_pre", f"{match_b} counter ct zone set {flow.zone}"),
                ("raw_out", f"{match_b} counter ct zone set {flow.zone}"),
                ("nat_pre", f"ct zone {flow.zone} {match_a} dnat to {bi}:{bp}"),
                ("nat_out", f"ct zone {flow.zone} {match_a} dnat to {bi}:{bp}"),
                ("nat_post", f"ct zone {flow.zone} ip saddr {ai} udp sport {ap} ip daddr {bi} udp dport {bp}"
                             f" snat to {r}:{b.port}"),
            ]
            flows.append((flow, rules))
            lines += [f"add rule ip {self.table} {chain} {rule}" for chain, rule in rules]
        if not flows:
            return 0
        out = self._run("\n".join(lines) + "\n", "--echo", "--handle")
        handles = [int(line.rsplit("# handle ", 1)[1]) for line in out.splitlines() if "# handle " in line]
        if len(handles) != len(lines):
            raise KernelError(f"nft echoed {len(handles)} handles for {len(lines)} rules")
        i = 0
        for flow, rules in flows:
            for chain, _ in rules:
                flow.handles.setdefault(chain, []).append(handles[i])
                i += 1
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
            lines += [f"delete rule ip {self.table} {chain} handle {h}"
                      for chain, hs in flow.handles.items() for h in hs]
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
            data = json.loads(self._run(None, "-j", "list", "table", "ip", self.table))
        except (KernelError, ValueError) as exc:
            log.warning("cannot read kernel counters: %s", exc)
            return
        counters: dict[int, tuple[int, int]] = {}
        for item in data.get("nftables", []):
            rule = item.get("rule")
            if not rule or not rule.get("chain", "").startswith("raw_"):
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    counters[rule["handle"]] = (expr["counter"]["packets"], expr["counter"]["bytes"])
        for port, flow in self.flows.items():
            if port != flow.a.port:
                continue
            pre, out = flow.handles["raw_pre"], flow.handles["raw_out"]
            for target, hs in ((flow.a, (pre[0], out[0])), (flow.b, (pre[1], out[1]))):
                for h in hs:
                    packets, octets = counters.get(h, (0, 0))
                    old_p, old_b = flow.counted.get(h, (0, 0))
                    if packets > old_p:
                        target.packets += packets - old_p
                        # nftables counts IP packets; user space counts UDP payload
                        target.bytes += (octets - old_b) - IP_UDP_HEADERS * (packets - old_p)
                        target.last = now
                        flow.counted[h] = (packets, octets)
