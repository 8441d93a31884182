"""A real PostgreSQL server for the ledger contract tests, started once per session on 127.0.0.1.

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a scratch PostgreSQL server (user ``paxis``, trust auth, loopback only)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (the [postgres] extra)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="paxis-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    options = f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "paxis", "-A", "trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
             "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        log = folder / "log"
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL ({exc}); server log: {tail or 'none'}")
    try:
        yield f"postgresql://paxis@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


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
