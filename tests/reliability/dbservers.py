"""Private database servers for the fault tests: a PostgreSQL and a MariaDB of their own,
in a temporary directory on a free port, which a test may stop and start again (it cannot
restart the machine's own).  Either skips the test, saying why, when it cannot start.

Run as root, both servers are started as their system user (``postgres``, ``mysql``):
PostgreSQL refuses to run as root and MariaDB should not.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_tcp


def _as_user(name: str) -> tuple[list[str], int, int] | None:
    """The command prefix running as ``name`` when we are root, with its uid and gid."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not os.path.exists(runuser):
        return None
    return [runuser, "-u", name, "--"], pw.pw_uid, pw.pw_gid


def _own(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        for p in [path, *path.rglob("*")]:
            os.chown(p, uid, gid)


def _private_dir(name: str) -> Path:
    """A directory of its own under the system's temporary directory: the server's user
    cannot enter pytest's (pytest keeps its base directory at mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"msp-faults-{name}-"))
    path.chmod(0o755)
    return path


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or next(
            (p for p in (f"/usr/local/bin/{name}", f"/usr/sbin/{name}", f"/usr/bin/{name}")
             if os.path.exists(p)), None)
        if path:
            return path
    return None


class PostgresServer:
    """``initdb`` (trust authentication) into ``root``, ``pg_ctl start`` on a free port."""

    def __init__(self, root: Path | None = None) -> None:
        root = root or _private_dir("postgresql")
        self.root = root
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        initdb, self.pg_ctl = _find("initdb"), _find("pg_ctl")
        prefix = _as_user("postgres")
        if not initdb or not self.pg_ctl:
            pytest.skip("PostgreSQL not installed here (initdb and pg_ctl not found)")
        if prefix is None:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        self.prefix, uid, gid = prefix
        root.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        _own(root, uid, gid)
        self.port = free_port()
        out = subprocess.run([*self.prefix, initdb, "-D", str(self.data), "-A", "trust", "-U", "msp",
                              "--no-sync", "-E", "UTF8"], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"initdb failed as this user: {out.stderr.strip()[-300:]}")
        self.url = f"postgresql+psycopg://msp@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self, timeout: float = 30) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        out = subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.log),
                              "-w", "-t", str(int(timeout)), "start"], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"PostgreSQL did not start: {out.stderr.strip()[-300:]}\n{self.log.read_text()[-500:]}")
        wait_tcp("127.0.0.1", self.port, timeout)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
                       capture_output=True, text=True)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class MariaDBServer:
    """``mariadb-install-db`` into ``root``, ``mariadbd`` on a free port and its own socket."""

    def __init__(self, root: Path | None = None) -> None:
        root = root or _private_dir("mariadb")
        self.root = root
        self.data = root / "mariadb"
        self.socket = root / "mariadb.sock"
        self.log = root / "mariadb.log"
        install, self.mariadbd = _find("mariadb-install-db", "mysql_install_db"), _find("mariadbd", "mysqld")
        prefix = _as_user("mysql")
        if not install or not self.mariadbd:
            pytest.skip("MariaDB not installed here (mariadb-install-db and mariadbd not found)")
        if prefix is None:
            pytest.skip("running as root and there is no 'mysql' user to run MariaDB as")
        self.prefix, uid, gid = prefix
        self.user = pwd.getpwuid(uid).pw_name
        root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir()
        _own(root, uid, gid)
        out = subprocess.run([install, f"--datadir={self.data}", f"--user={self.user}", "--auth-root-authentication-method=normal",
                              "--skip-test-db", "--no-defaults"], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"mariadb-install-db failed: {(out.stderr or out.stdout).strip()[-300:]}")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql"
        self.start()

    def start(self, timeout: float = 30) -> None:
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--user={self.user}",
             f"--pid-file={self.root / 'mariadb.pid'}",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=32M",
             "--skip-log-bin", "--max-connections=500"],
            stdout=self._out, stderr=subprocess.STDOUT)
        try:
            wait_tcp("127.0.0.1", self.port, timeout, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.close()
            pytest.skip(f"MariaDB did not start ({exc}): {self.log.read_text()[-500:]}")
        deadline = time.monotonic() + timeout
        import pymysql

        while time.monotonic() < deadline:  # the port opens before it takes logins
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root").close()
                return
            except pymysql.MySQLError:
                time.sleep(0.1)

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._out.close()

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.root, ignore_errors=True)
