"""A full disk, for real: ``check()`` refuses before anything is paid for, a failed append
leaves the file as it was, and the log recovers once there is room again.

The disk is a 256 KiB tmpfs mounted in a private mount namespace (``unshare``), so nothing
outside the test sees it; the test is skipped where namespaces are not allowed. The file-size
limit (``RLIMIT_FSIZE``) case needs no privilege.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

_ON_A_FULL_DISK = r"""
import json, os, sys
from pathlib import Path
from paxis_router.errors import AuditError
from paxis_router.governance.audit import AuditLog, verify

disk, key = Path(sys.argv[1]), "k" * 32
log = AuditLog(disk / "audit.jsonl", key=key, min_free_bytes=32 * 1024, checkpoint_every=1000)

def attempt(action):
    try:
        action()
        return "ok"
    except AuditError as exc:
        return str(exc)

def big():
    log.append(kind="route", decision="accept", reason="r" * 20000)

out = {}
for i in range(3):
    log.append(kind="route", decision="accept", target=str(i))
out["check_before"] = attempt(log.check)
fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while os.write(fd, b"\0" * 4096):
        pass
except OSError as exc:
    out["filler"] = exc.strerror
os.close(fd)
out["check_full"] = attempt(log.check)
out["append_full"] = attempt(big)
result = verify(disk / "audit.jsonl", key=key)
out["verify_full"] = [result.ok, result.records]
os.unlink(disk / "filler")
out["check_freed"] = attempt(log.check)
out["append_freed"] = attempt(big)
out["close"] = attempt(log.close)
result = verify(disk / "audit.jsonl", key=key)
out["verify_end"] = [result.ok, result.records, result.checkpointed]
print(json.dumps(out))
"""

_OVER_THE_SIZE_LIMIT = r"""
import json, resource, sys
from pathlib import Path
from paxis_router.errors import AuditError
from paxis_router.governance.audit import AuditLog, verify

path = Path(sys.argv[1])
log = AuditLog(path, fsync=False)

def attempt(action):
    try:
        action()
        return "ok"
    except AuditError as exc:
        return str(exc)

out = {}
for i in range(3):
    log.append(kind="route", decision="accept", target=str(i))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, hard))
out["append_over"] = attempt(lambda: log.append(kind="route", decision="accept", reason="r" * 500))
out["check_over"] = attempt(log.check)
out["verify_over"] = [verify(path).ok, verify(path).records]
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
out["check_still"] = attempt(log.check)  # not a space error: it holds until an append succeeds
out["append_after"] = attempt(lambda: log.append(kind="route", decision="accept"))
out["check_after"] = attempt(log.check)
out["verify_end"] = [verify(path).ok, verify(path).records]
print(json.dumps(out))
"""


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def on_tiny_tmpfs(mount: Path, script: str) -> dict[str, Any]:  # Any: the script's JSON
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1): cannot mount a private tmpfs")
    mount.mkdir()
    wrapper = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" -c "$3" "$1"'
    argv = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", wrapper, "sh"]
    probe = run([*argv, str(mount), "true", ""])
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    proc = run([*argv, str(mount), sys.executable, script])
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_a_full_disk_is_refused_by_check_and_recovers(tmp_path: Path) -> None:
    out = on_tiny_tmpfs(tmp_path / "disk", _ON_A_FULL_DISK)
    log = tmp_path / "disk" / "audit.jsonl"  # the path inside the namespace
    assert out["check_before"] == "ok"
    assert out["filler"] == "No space left on device"
    assert out["check_full"] == (
        f"{log}: its filesystem has 0 bytes free (less than min_free_bytes 32768): the disk is "
        "full; free space before routing"
    )
    assert out["append_full"] == (
        f"{log}: could not append a record (No space left on device); nothing was written, "
        "and check() fails until the log can take records again"
    )
    assert out["verify_full"] == [True, 3]  # the half-written record was cut back off
    assert out["check_freed"] == "ok"
    assert out["append_freed"] == "ok"
    assert out["close"] == "ok"
    assert out["verify_end"] == [True, 4, 4]


def test_a_write_over_the_file_size_limit_is_refused_until_an_append_succeeds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    proc = run([sys.executable, "-c", _OVER_THE_SIZE_LIMIT, str(path)])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["append_over"] == (
        f"{path}: could not append a record (File too large); nothing was written, and "
        "check() fails until the log can take records again"
    )
    failed = (
        f"{path}: the last append failed (File too large); fix the cause, then restart (or "
        "append successfully) to clear this"
    )
    assert (out["check_over"], out["check_still"]) == (failed, failed)
    assert out["verify_over"] == [True, 3]  # the partial write was cut back off
    assert (out["append_after"], out["check_after"]) == ("ok", "ok")
    assert out["verify_end"] == [True, 4]
