"""Calls under load through two worker processes: none may fail.

With ``workers = 2`` about half of the datagrams reach the worker that does not own their
call (the kernel spreads senders by address, the proxy spreads calls by Call-ID) and are
handed over.  Handed-over messages used to be handled one after another in the mailbox
reader, so a request waiting on the database held the responses behind it past Timer A:
the proxy retransmitted the INVITE and sipp's UAS aborted the call on it.  Here 200
authenticated calls at 40 calls/s from two sipp UACs must all complete, and the UAS must
not see a single unexpected message.
"""

from __future__ import annotations

import subprocess

from tests.helpers import free_port, require_tool

from .sipp_support import DOMAIN, SCENARIOS, ProxyProcess, Sipp, _wait_bound, auth_row, provision

CALLERS = {f"load{n}": f"pw-load-{n}" for n in range(4)}
RATE_PER_UAC = 20  # calls/s, two UACs
CALLS_PER_UAC = 100


def _uac(tmp, name: str, proxy_port: int, callers: dict[str, str]) -> tuple[subprocess.Popen, object]:
    sipp = require_tool("sipp")
    inf = tmp / f"{name}.csv"
    inf.write_text("SEQUENTIAL\n" + "\n".join(
        f"{u};{DOMAIN};[authentication username={u} password={p}]" for u, p in callers.items()) + "\n")
    log = open(tmp / f"{name}.out", "wb")
    proc = subprocess.Popen(
        [sipp, f"127.0.0.1:{proxy_port}", "-sf", str(SCENARIOS / "uac_auth.xml"), "-i", "127.0.0.1",
         "-p", str(free_port()), "-inf", str(inf), "-s", "uas", "-d", "200",
         "-r", str(RATE_PER_UAC), "-m", str(CALLS_PER_UAC), "-l", "200", "-nostdin",
         "-recv_timeout", "8000", "-timeout", "40s", "-timeout_error",
         "-trace_err", "-error_file", str(tmp / f"{name}.err")],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, log


def test_two_workers_carry_200_calls_at_40_per_second_without_a_failure(db_url, tmp_path):
    provision(db_url, users={**CALLERS, "uas": "pw-uas"})
    proxy = ProxyProcess(tmp_path, db_url, workers=2, sections={"logging": {"level": "info"}})
    uas = None
    uacs = []
    try:
        reg = Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[auth_row("uas", "pw-uas")])
        assert reg.wait() == 0, reg.report()
        # sipp's UAS answers as many calls as come (the Sipp helper stops after one)
        uas_log = open(tmp_path / "uas.out", "wb")
        uas = subprocess.Popen(
            [require_tool("sipp"), "-sf", str(SCENARIOS / "uas.xml"), "-i", "127.0.0.1",
             "-p", str(reg.port), "-nostdin", "-trace_err", "-error_file", str(tmp_path / "uas.err")],
            cwd=tmp_path, stdout=uas_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_bound(reg.port, "u1")
        callers = list(CALLERS.items())
        uacs = [_uac(tmp_path, f"uac{n}", proxy.port, dict(callers[n::2])) for n in range(2)]
        codes = []
        for proc, log in uacs:
            try:
                codes.append(proc.wait(60))
            finally:
                log.close()
        reports = "\n".join((tmp_path / f"uac{n}.err").read_text(errors="replace")[-3000:]
                            for n in range(2) if (tmp_path / f"uac{n}.err").exists())
        assert codes == [0, 0], f"failed calls: {codes}\n{reports}\n{proxy.output()[-3000:]}"
        uas_errors = tmp_path / "uas.err"
        text = uas_errors.read_text(errors="replace") if uas_errors.exists() else ""
        assert "Aborting" not in text and "unexpected" not in text, text[-3000:]
        out = proxy.output()
        assert out.count("200 OK (1 branch") == 2 * CALLS_PER_UAC  # one info line per call
        assert " [0] INFO call " in out and " [1] INFO call " in out  # both workers carried calls
    finally:
        for proc, log in uacs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        if uas is not None:
            uas.kill()
            uas.wait()
            uas_log.close()
        proxy.stop()
