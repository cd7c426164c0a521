"""A worker of ``python -m ngnpro`` retires and is replaced by a fresh fork (``[ngnpro]
worker_max_requests``, ``worker_max_rss``, libxml2 out of memory) without a request refused
or cut short, and the name flood of docs/reliability.md finding 5 no longer leaves a
server refusing requests with names it has not seen.

Each test runs its own server (one worker: the hardest case, no sibling takes the
connections while the worker is replaced) and reads the workers' pids from its log
(``worker 0 serving, pid N``).
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from tests.ngnpro.conftest import NGNProServer, start_ngnpro
from tests.ngnpro.harness import (
    ADMIN,
    envelope,
    fault_code,
    http_post,
    raw_call,
    zeep_auth,
    zeep_client,
    zeep_port,
)

_SERVING = re.compile(r"worker 0 serving, pid (\d+)")
#: a request whose method element has a name given by {0}: unknown to the server (fault 9003
#: "unknown method"), but well-formed, so it is parsed -- every name in it is interned
FLOOD_ENVELOPE = ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
                  '<m xmlns="urn:x">{0}</m></SOAP-ENV:Body></SOAP-ENV:Envelope>')


def _pids(server: NGNProServer) -> list[int]:
    return [int(p) for p in _SERVING.findall(server.output())]


def _wait_for(what: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _stop(server: NGNProServer) -> None:
    server.service.stop()
    server.close()


def _names_body(count: int, size: int) -> bytes:
    """``count`` empty elements, each named by ``2 * size`` random hex digits: names never
    seen before, about ``count * 2 * size`` bytes of them."""
    return FLOOD_ENVELOPE.format("".join(f"<n{os.urandom(size).hex()}/>" for _ in range(count))).encode()


def _unseen_name_answered(server: NGNProServer) -> None:
    """A request with a name never seen (2 kB long, like the flood's: a worker whose
    dictionary was filled by them refuses it) is parsed: its answer is "unknown method",
    not "malformed XML"; and an ordinary call works."""
    name = f"never-seen-{os.urandom(1000).hex()}"
    status, _, data = http_post(server.url, FLOOD_ENVELOPE.format(f"<{name}/>").replace(
        "<m ", f"<{name}-m ").replace("</m>", f"</{name}-m>").encode())
    assert status == 500 and b"unknown method {urn:x}" + name.encode() + b"-m" in data, data[-300:]
    status, root = raw_call(server.url, envelope("Customer", "getCustomers", "<query/>", auth=ADMIN))
    assert status == 200 and fault_code(root) is None


def test_steady_stream_survives_worker_replacement(tmp_path: Path, sqlite_url: str) -> None:
    """Three clients at once -- zeep (kept-alive HTTP/1.1), a kept-alive raw HTTP/1.1 client
    and a PEAR-style client (a connection per request) adding accounts -- call without a
    pause while the only worker retires every 10 requests, until five workers have retired:
    every call is answered, right.  (A retiring worker serves on until its replacement
    does, some 0.5 s, so it answers more than 10.)"""
    server = start_ngnpro(tmp_path, sqlite_url, worker_max_requests=10)
    failures: list[str] = []
    calls = {"zeep": 0, "keep-alive": 0, "pear": 0}
    closes = [0]
    added: list[str] = []
    done = threading.Event()

    def zeep_calls() -> None:
        port = zeep_port(zeep_client(server.url), "Customer")
        hdr = zeep_auth()
        while not done.is_set():
            try:
                port.getCustomers(query={}, _soapheaders=hdr)
                calls["zeep"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                failures.append(f"zeep: {exc!r}")

    def keep_alive_calls() -> None:
        body = envelope("Customer", "getCustomers", "<query/>", auth=ADMIN).encode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        while not done.is_set():
            try:
                conn.request("POST", "/ngnpro/", body=body, headers={"Content-Type": "text/xml", "SOAPAction": '""'})
                resp = conn.getresponse()
                data = resp.read()
                calls["keep-alive"] += 1
                if resp.status != 200 or b"getCustomersResponse" not in data:
                    failures.append(f"keep-alive: {resp.status} {data[-200:]!r}")
                if (resp.getheader("Connection") or "").lower() == "close":
                    closes[0] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"keep-alive: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        conn.close()

    def pear_calls() -> None:
        while not done.is_set():
            username = f"r{calls['pear']}"
            body = envelope("Customer", "addAccount", f'<account><username xsi:type="xsd:string">{username}'
                                                      '</username></account>', auth=ADMIN).encode()
            try:
                status, _, data = http_post(server.url, body)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"pear: {exc!r}")
                continue
            calls["pear"] += 1
            if status != 200:
                failures.append(f"pear: {status} {data[-200:]!r}")
            else:
                added.append(username)

    try:
        first = _wait_for(lambda: _pids(server))[0]
        clients = [threading.Thread(target=f) for f in (zeep_calls, keep_alive_calls, pear_calls)]
        for t in clients:
            t.start()
        try:
            _wait_for(lambda: server.output().count(" retired, pid ") >= 5, timeout=90)
        finally:
            done.set()
            for t in clients:
                t.join(30)
        assert failures == []
        assert min(calls.values()) >= 10, calls
        pids = _pids(server)
        assert len(set(pids)) >= 6 and pids[0] == first, pids
        assert closes[0] >= 1  # a kept-alive connection was told to close, not dropped
        status, root = raw_call(server.url, envelope("Customer", "getCustomers", "<query/>", auth=ADMIN))
        assert root.findtext(".//total") == str(len(added)) and len(added) == calls["pear"]
        log = server.output()
        assert "requests answered (worker_max_requests)" in log and "is retiring; starting its replacement" in log
        assert " ERROR " not in log and "Traceback" not in log and "connections cut" not in log
    finally:
        _stop(server)


def test_name_flood_past_a_low_rss_mark_replaces_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    """The fast variant of the name flood: with ``worker_max_rss`` some 25 MB over the
    worker's memory at rest (about 75 MB here), 40 requests of 1 MB of new names each (every
    one answered, "unknown method") make the worker retire; the flood goes on against its
    replacement, and a name never seen is still answered normally."""
    server = start_ngnpro(tmp_path, sqlite_url, worker_max_rss=100)
    try:
        first = _wait_for(lambda: _pids(server))[0]
        for _ in range(40):
            status, _, data = http_post(server.url, _names_body(500, 1000))
            assert status == 500 and b"unknown method" in data, data[-300:]
        pids = _wait_for(lambda: len(_pids(server)) >= 2 and _pids(server))
        assert pids[0] == first and len(set(pids)) >= 2
        assert re.search(r"resident memory \d+ MB is over worker_max_rss 100 MB", server.output())
        _unseen_name_answered(server)
    finally:
        _stop(server)


def test_full_name_dictionary_retires_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    """With no memory mark (``worker_max_rss = 0``) the flood, on one kept-alive
    connection, fills libxml2's dictionary (after some 170 requests of 1 MB of new names):
    that request is answered as before, "malformed XML" (fault 9003), with ``Connection:
    close`` -- and the worker has stopped accepting before it answered, so the request with
    a new name sent right after it is parsed by the fresh worker that replaces it."""
    server = start_ngnpro(tmp_path, sqlite_url, worker_max_rss=0)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        first = _wait_for(lambda: _pids(server))[0]
        refused = None
        for i in range(400):
            conn.request("POST", "/ngnpro/", body=_names_body(500, 1000), headers={"Content-Type": "text/xml"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 500 and b"<errorcode xsi:type=\"xsd:int\">9003<" in data, data[-300:]
            if b"malformed XML" in data:
                assert resp.getheader("Connection") == "close"
                refused = i
                break
            assert resp.getheader("Connection") is None  # kept alive until then
        assert refused is not None and refused > 100, refused  # ~170 MB of names first
        _unseen_name_answered(server)  # at once: no waiting for the replacement here
        pids = _pids(server)
        assert pids[0] == first and len(set(pids)) == 2
        log = server.output()
        assert "the SOAP decoder ran out of memory" in log and "this worker retires after the request" in log
    finally:
        conn.close()
        _stop(server)


def test_name_flood_with_the_default_settings(tmp_path: Path, sqlite_url: str) -> None:
    """The flood of ``NAME_FLOOD`` (tests/reliability/test_fuzz_regressions.py), 2 kB names
    then short ones, sent to a server with the default ``worker_max_rss`` (160 MB): the
    worker retires past the mark well before the dictionary is full, so no request of the
    flood is refused as malformed, and names never seen are answered afterwards."""
    server = start_ngnpro(tmp_path, sqlite_url)
    try:
        _wait_for(lambda: _pids(server))
        for i in range(260):  # 260 MB of 2 kB names: more than a dictionary holds (~170 MB)
            status, _, data = http_post(server.url, _names_body(500, 1000))
            assert status == 500 and b"unknown method" in data, (i, data[-300:])
        for i in range(40):  # and 10,000 short ones
            status, _, data = http_post(server.url, _names_body(250, 5))
            assert status == 500 and b"unknown method" in data, (i, data[-300:])
        assert len(set(_pids(server))) >= 2
        assert "worker_max_rss 160 MB" in server.output()
        _unseen_name_answered(server)
    finally:
        _stop(server)


_HANDOVER = r"""
import logging, os, signal, sys, time
sys.path.insert(0, ROOT)
from ngnpro.models import prefork
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")

def run(index):
    if not os.path.exists(os.path.join(TMP, "first")):
        open(os.path.join(TMP, "first"), "w").write(str(os.getpid()))
        signal.pthread_sigmask(signal.SIG_BLOCK, {prefork.HANDED_OVER})
        assert prefork.announce_retirement()
        got = signal.sigtimedwait({prefork.HANDED_OVER}, 10)
        # the replacement announced itself serving before this worker was told to stop
        print("handed over", got is not None, os.path.exists(os.path.join(TMP, "second")), flush=True)
        return prefork.RETIRED
    open(os.path.join(TMP, "second"), "w").write(str(os.getpid()))
    assert prefork.announce_serving()
    time.sleep(60)

sys.exit(prefork.supervise(1, run, logging.getLogger("test")))
"""


def test_supervisor_hands_over_to_the_replacement(tmp_path: Path) -> None:
    """``supervise`` itself: a worker announcing its retirement gets its replacement forked
    at once and is told to stop (``HANDED_OVER``) only once the replacement serves; its
    planned exit is logged at info, not as a failure, and nothing is restarted twice."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    script = f"ROOT = {str(root)!r}\nTMP = {str(tmp_path)!r}\n" + _HANDOVER
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        _wait_for(lambda: (tmp_path / "second").exists() and (tmp_path / "second").read_text(), timeout=20)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    first, second = (tmp_path / "first").read_text(), (tmp_path / "second").read_text()
    assert proc.returncode == 0, out
    assert "handed over True True" in out, out
    assert f"INFO worker 0 (pid {first}) is retiring; starting its replacement" in out
    assert f"INFO worker 0 (pid {second}) serves; pid {first} stops accepting" in out
    assert f"INFO worker 0 (pid {first}) retired" in out
    assert "ERROR" not in out and "restarting" not in out, out


def test_only_memory_failures_retire_a_worker() -> None:
    """A malformed, too deep or DOCTYPE-carrying request is refused as ever and does not
    make the worker retire (else any client could have workers replaced at will); a
    ``MemoryError`` or libxml2's XML_ERR_NO_MEMORY does."""
    from lxml import etree

    from ngnpro import recycle
    from ngnpro.soap.envelope import parse_request
    from ngnpro.soap.faults import NGNProError

    for body in (b"<a><b></a>", b"<a>" * 300, b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', b"\xff\xfe<a/>"):
        try:
            etree.fromstring(body, etree.XMLParser(resolve_entities=False, load_dtd=False))
        except etree.XMLSyntaxError as exc:
            assert not recycle.out_of_memory(exc), exc
        try:
            parse_request(body)
        except NGNProError:
            pass
    assert recycle.exhausted() is None
    assert recycle.out_of_memory(MemoryError())
    assert recycle.out_of_memory(etree.XMLSyntaxError("Memory allocation failed", 2, 0, 0))


_XCAP_EXHAUSTED = r"""
import os, sys
sys.path.insert(0, ROOT)
from lxml import etree
from ngnpro import recycle
from ngnpro.xcap.errors import XcapError
from ngnpro.xcap.xmlsafe import parse_document
for size, count in ((1000, 500), (5, 500)):  # fill this thread's name dictionary as the flood does
    for i in range(2000):
        try:
            etree.fromstring(("<m>" + "".join(f"<n{os.urandom(size).hex()}/>" for _ in range(count)) + "</m>").encode())
        except etree.XMLSyntaxError as exc:
            assert recycle.out_of_memory(exc), exc
            break
assert recycle.exhausted() is None
try:
    parse_document(b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><never-seen-name/></resource-lists>')
except XcapError as exc:
    print("refused", exc.kind, "|", recycle.exhausted())
"""


def test_xcap_parser_out_of_memory_retires_the_worker(tmp_path: Path) -> None:
    """The XCAP parser reports a full name dictionary as the SOAP decoder does: the
    document is refused as before (409 ``not-well-formed``), and the worker is marked to
    retire after answering (in a subprocess: filling the dictionary takes some 3 s)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", f"ROOT = {str(root)!r}\n" + _XCAP_EXHAUSTED], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "refused not-well-formed | the XCAP parser ran out of memory" in done.stdout, done.stdout
