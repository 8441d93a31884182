"""A real PostgreSQL server for the ledger contract tests, started once per session on 127.0.0.1
(and, for the tests that stop or restart it, one of their own).

Uses Debian's ``postgresql`` package binaries (``.ci/run`` installs them). As root, the server runs
as the ``postgres`` user (initdb refuses root). The tests that need it are skipped, with the
reason, only when the server cannot be started here.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paxis_router.ledger import open_ledger
from paxis_router.ledger.postgres import PostgresLedger
from paxis_router.ledger.sqlite import SQLiteLedger


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A scratch PostgreSQL server (user ``paxis``, trust auth, loopback only) that a test can
    stop, start and restart; ``url`` names its ``postgres`` database."""

    def __init__(self) -> None:
        pytest.importorskip("psycopg", reason="psycopg is not installed (the [postgres] extra)")
        bindir = _pg_bin()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="paxis-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.folder)
                pytest.skip("running as root and there is no 'postgres' user to run the server as")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = self.folder / "data", _free_port()
        self.url = f"postgresql://paxis@127.0.0.1:{self.port}/postgres"
        try:
            subprocess.run(
                [*self.as_user, str(bindir / "initdb"), "-D", str(self.data), "-U", "paxis",
                 "-A", "trust", "-E", "UTF8", "--no-sync"],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            self.start()
        except (OSError, subprocess.SubprocessError) as exc:
            log = self.folder / "log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            shutil.rmtree(self.folder, ignore_errors=True)
            pytest.skip(f"could not start PostgreSQL ({exc}); server log: {tail or 'none'}")

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        )
        self._ctl("-l", str(self.folder / "log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop now: open sessions are cut, as in a crash or a failover."""
        self._ctl("-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
             "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self) -> str:
        """A URL to a fresh, empty database on this server."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the session's scratch PostgreSQL server."""
    server = PostgresServer()
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own, which its tests may stop and restart (each
    leaves it running)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A URL to a fresh, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SQLiteLedger | PostgresLedger]:
    """Each test that takes ``ledger`` runs on SQLite and on PostgreSQL (the contract)."""
    opened: SQLiteLedger | PostgresLedger
    if request.param == "sqlite":
        opened = open_ledger(tmp_path / "ledger.db")
    else:
        opened = open_ledger(request.getfixturevalue("postgres_url"))
    assert opened.dialect == request.param
    try:
        yield opened
    finally:
        opened.close()
