"""Kernel forwarding of locked streams with nftables (``kernel_forwarding``, default ``"auto"``).

User space stays in charge: it learns both parties of a stream (symmetric RTP) and only then
hands that one flow to the kernel, the way the reference MediaProxy hands flows to
conntrack.  Per flow (one RTP or RTCP port pair), in a table of this relay's own:

* ``raw`` chains (prerouting for packets from the network, output for local ones) put the
  two exact 4-tuples, party A -> relay port a and party B -> relay port b, into a conntrack
  zone of their own, and count them (a set with per-element counters: the per-direction
  packet and byte counters);
* ``nat`` chains DNAT A's packets to B and SNAT them to come from relay port b, and B's
  packets to A from relay port a.  Whichever party's packet comes first makes the conntrack
  entry; the other party's packets match its reply direction and are NATed back.  Both
  directions must be in the maps: with only A -> B there, a packet of B's that came first
  made an un-NATed entry B -> relay port b, and A's NAT to that same tuple then clashed,
  so the kernel dropped every A -> B packet (EPERM to a local sender) for as long as the
  entry lived.

Flows are elements of maps keyed by the 4-tuple, so the per-packet cost does not grow with
the number of flows.

The fresh zone matters: the packets user space relayed before already made conntrack
entries for the same 4-tuples, and NAT is only decided for new connections.  Each install
takes a new zone, so entries left by an earlier install of the same ports never apply.
Packets from any other source match nothing here and still reach the relay's socket, which
drops and counts them (no hijack).  Counters are read back every few seconds into the same
:class:`RelayPort` fields user space updates, so summaries and media timeouts work as before.

Every ``nft`` run after the table is made happens on a worker thread (``background=True``):
installing 1,000 flows takes about 170 ms and reading 1,000 flows' counters about 45 ms, and
the forwarding loop must not stop for that, or the packets still relayed in user space (new
calls, flows not yet installed) wait that long.  Results are applied by the loop's thread
in :meth:`KernelPath.finish`.

Needs CAP_NET_ADMIN (root), the ``nft`` program and IPv4; for parties on other hosts also
``net.ipv4.ip_forward = 1``.  :func:`decide` says whether it can run.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .session import RelayPort

log = logging.getLogger("mediaproxy.kernel")

IP_UDP_HEADERS = 28  # IPv4 (no options) + UDP


class KernelError(Exception):
    """nftables is missing or refused a change."""


#: called with nft's output or its error when a job has run
Done = Callable[[str | None, KernelError | None], None]

#: ``CapEff`` bit of CAP_NET_ADMIN (linux/capability.h)
CAP_NET_ADMIN = 12


def has_net_admin(status_path: str = "/proc/self/status") -> bool:
    """Whether this process may change nftables: CAP_NET_ADMIN in its effective set (root
    has it, a container or a systemd unit may grant it without root, or take it away)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def decide(setting: bool | str, relay_ip: str, net_admin: bool, nft: str | None) -> tuple[bool, str]:
    """Whether to try the kernel path, and the reason when not.

    ``setting`` is ``kernel_forwarding``: ``False`` never, ``True`` required (the caller
    treats a ``False`` answer as a configuration error), ``"auto"`` wherever it can run.
    Starting the table may still fail after a ``True`` answer (no nf_tables in this kernel,
    a refused netlink request); ``"auto"`` then falls back to user space too.
    """
    if setting is False:
        return False, "kernel_forwarding = false"
    if ":" in relay_ip:
        return False, f"relay_ip {relay_ip} is IPv6 (the kernel path is IPv4 only)"
    if not net_admin:
        return False, "no CAP_NET_ADMIN (run as root or grant the capability)"
    if not nft:
        return False, "the nft program is missing (Debian package nftables)"
    return True, ""


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
    #: flows per nft run: 200 take about 35 ms, so when a thousand calls start at once the
    #: first reach the kernel sooner than if all waited for one 170 ms run
    BATCH = 200

    def __init__(self, relay_ip: str, name: str, background: bool = False) -> None:
        self.ip = relay_ip
        self.table = name
        self.nft = shutil.which("nft") or "/usr/sbin/nft"
        self.flows: dict[int, Flow] = {}  # by the port of either side
        self.zone = 0
        self.background = background
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        #: finished jobs (callback, output, error), appended by the worker, applied by finish()
        self.done: collections.deque = collections.deque()
        self.polling = False
        #: the worker writes here when a result is ready, waking the forwarding loop's epoll
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.thread: threading.Thread | None = None

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

    def _submit(self, script: str | None, args: tuple[str, ...], on_done: Done) -> None:
        """Run nft now (tests, ``background=False``) or on the worker thread; ``on_done`` is
        called with the output or the error, on the caller's thread either way."""
        if self.thread is None:
            try:
                out, err = self._run(script, *args), None
            except KernelError as exc:
                out, err = None, exc
            on_done(out, err)
        else:
            self.jobs.put((script, args, on_done))

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            script, args, on_done = job
            try:
                out, err = self._run(script, *args), None
            except KernelError as exc:
                out, err = None, exc
            self.done.append((on_done, out, err))
            os.eventfd_write(self.wake_fd, 1)

    def finish(self, fd: int = -1, events: int = 0) -> None:
        """Apply the results of finished background jobs (the forwarding loop's thread; also
        its reader callback for :attr:`wake_fd`)."""
        try:
            os.eventfd_read(self.wake_fd)
        except (BlockingIOError, OSError):
            pass
        while self.done:
            on_done, out, err = self.done.popleft()
            try:
                on_done(out, err)
            except Exception:  # a bug in one result must not stop the forwarding loop
                log.exception("kernel path: applying an nft result failed")

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
        if self.background and self.thread is None:
            self.thread = threading.Thread(target=self._work, name="nft", daemon=True)
            self.thread.start()

    def drain(self) -> None:
        """Stop the worker after the jobs it was given, and apply their results."""
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join(30)
            self.thread = None
        self.finish()

    def close(self) -> None:
        self.drain()
        try:
            self._run(None, "delete", "table", "ip", self.table)
        except KernelError as exc:
            log.warning("cannot remove nftables table %s: %s", self.table, exc)
        self.flows.clear()
        os.close(self.wake_fd)

    # -- flows ---------------------------------------------------------------------------
    def _elements(self, flow: Flow) -> dict[str, list[str]]:
        (ai, ap), (bi, bp), r = flow.a_src, flow.b_src, self.ip
        ka, kb = f"{ai} . {ap} . {r} . {flow.a.port}", f"{bi} . {bp} . {r} . {flow.b.port}"
        return {
            "counted": [ka, kb],
            "zones": [f"{ka} : {flow.zone}", f"{kb} : {flow.zone}"],
            "dnat4": [f"{ka} : {bi} . {bp}", f"{kb} : {ai} . {ap}"],
            "snat4": [f"{ai} . {ap} . {bi} . {bp} : {r} . {flow.b.port}",
                      f"{bi} . {bp} . {ai} . {ap} : {r} . {flow.a.port}"],
        }

    @staticmethod
    def _key(addr: tuple, port: int, relay: str) -> str:
        return f"{addr[0]}.{addr[1]}.{relay}.{port}"

    def install(self, pairs: list[tuple[RelayPort, RelayPort]]) -> int:
        """Hand these port pairs (both parties learned) to the kernel; returns how many.

        The flows count as installed at once, so they are not handed over twice; if nft
        refuses a batch its flows are forgotten again and stay in user space."""
        installed = 0
        for start in range(0, len(pairs), self.BATCH):
            installed += self._install(pairs[start:start + self.BATCH])
        return installed

    def _install(self, pairs: list[tuple[RelayPort, RelayPort]]) -> int:
        flows, lines = [], []
        for a, b in pairs:
            if a.port in self.flows or b.port in self.flows or not a.learned or not b.learned:
                continue
            self.zone = self.zone % 65000 + 1
            flow = Flow(a, b, a.learned[:2], b.learned[:2], self.zone)
            flows.append(flow)
            self.flows[a.port] = self.flows[b.port] = flow
            lines += [f"add element ip {self.table} {name} {{ {', '.join(elems)} }}"
                      for name, elems in self._elements(flow).items()]
        if not flows:
            return 0

        def done(out: str | None, err: KernelError | None) -> None:
            if err is not None:
                log.error("kernel path: cannot install %d flows, they stay in user space: %s", len(flows), err)
                for flow in flows:
                    for port in (flow.a.port, flow.b.port):
                        if self.flows.get(port) is flow:
                            del self.flows[port]
            else:
                log.debug("kernel forwards %d flows", len(flows))

        self._submit("\n".join(lines) + "\n", (), done)
        return len(flows)

    def uninstall(self, ports: list[int], then: Callable[[], None] | None = None) -> None:
        """Take these ports' flows back to user space (stream closed, party moved), then
        call ``then`` (once nft has deleted them: a session's media stops before its
        ``remove`` is answered)."""
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
        if not lines:
            if then is not None:
                then()
            return

        def done(out: str | None, err: KernelError | None) -> None:
            if err is not None:
                log.warning("kernel path: %s", err)
            if then is not None:
                then()

        self._submit("\n".join(lines) + "\n", (), done)

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
        """Add the kernel's per-direction counters since the last poll to the relay ports.

        One read at a time.  The counters apply to the flows installed when the read was
        asked for and still installed when it answers (a flow replaced in between starts
        afresh)."""
        if not self.flows or self.polling:
            return
        flows = [flow for port, flow in self.flows.items() if port == flow.a.port]
        self.polling = True

        def done(out: str | None, err: KernelError | None) -> None:
            self.polling = False
            try:
                if err is not None:
                    raise err
                data = json.loads(out or "{}")
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
            self._count(counters, [f for f in flows if self.flows.get(f.a.port) is f], now)

        self._submit(None, ("-j", "list", "set", "ip", self.table, "counted"), done)

    #: one element of ``nft get element`` output (nft 1.0.6 prints it as text even with -j)
    ELEMENT = re.compile(r"([0-9.]+) \. (\d+) \. ([0-9.]+) \. (\d+) counter packets (\d+) bytes (\d+)")

    def final_counts(self, ports: list[int], now: float, then: Callable[[], None]) -> None:
        """Read the counters of these ports' flows alone (a session ending: its summary must
        count everything), then call ``then``; a failed read leaves the last poll's counts."""
        flows = list({id(f): f for f in (self.flows.get(p) for p in ports) if f is not None}.values())
        if not flows:
            then()
            return
        keys = [k for f in flows for k in self._elements(f)["counted"]]

        def done(out: str | None, err: KernelError | None) -> None:
            if err is not None:
                log.warning("cannot read kernel counters: %s", err)
            else:
                counters = {f"{m[1]}.{m[2]}.{m[3]}.{m[4]}": (int(m[5]), int(m[6]))
                            for m in self.ELEMENT.finditer(out or "")}
                self._count(counters, [f for f in flows if self.flows.get(f.a.port) is f], now)
            then()

        self._submit(f"get element ip {self.table} counted {{ {', '.join(keys)} }}\n", (), done)

    def holds(self, ports: list[RelayPort]) -> bool:
        """Whether any of these ports' flows is forwarded by the kernel."""
        return any(p.port in self.flows for p in ports)

    def _count(self, counters: dict[str, tuple[int, int]], flows: list[Flow], now: float) -> None:
        for flow in flows:
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
