"""The write path: the tail kept in memory, the fsync thread, flush/close, crashes, errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paxis_router.errors import AuditError
from paxis_router.governance.audit import AuditLog, checkpoints_path, verify

REPO = Path(__file__).resolve().parents[2]
KEY = "k" * 32
EIGHT_MB = "x" * (8 * 1024 * 1024)


def proc_io() -> dict[str, int]:
    """This process's read counters (all threads): bytes read and read calls."""
    path = Path("/proc/self/io")
    if not path.exists():  # pragma: no cover - Linux only
        pytest.skip("no /proc/self/io")
    pairs = (line.split(": ") for line in path.read_text().splitlines())
    return {name: int(value) for name, value in pairs}


def test_the_next_append_after_an_8_mb_record_reads_nothing_back(tmp_path: Path) -> None:
    """Issue 18: the tail was re-read 8 KiB at a time on every append."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, include_payload=True, fsync=False)
    log.append(kind="route", decision="accept")
    big = log.append(kind="route", decision="accept", payload=EIGHT_MB)
    before = proc_io()
    after_big = log.append(kind="route", decision="accept")
    used = {k: proc_io()[k] - before[k] for k in ("rchar", "syscr")}
    assert used["rchar"] < 64 * 1024  # nothing of the 8 MB record is read again
    assert after_big["prev"] == big["hash"]
    assert verify(path).records == 3


def test_after_another_writer_appended_the_tail_is_read_in_a_few_calls(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    mine = AuditLog(path, fsync=False)
    mine.append(kind="route", decision="accept")
    other = AuditLog(path, include_payload=True, fsync=False)  # another writer (own fd)
    big = other.append(kind="route", decision="accept", payload=EIGHT_MB)
    before = proc_io()
    record = mine.append(kind="route", decision="accept")  # sees the file grew: reads its tail
    used = {k: proc_io()[k] - before[k] for k in ("rchar", "syscr")}
    assert (record["seq"], record["prev"]) == (2, big["hash"])
    assert used["syscr"] <= 20  # 8 MB in doubling blocks (and /proc reads), not 1,024 of 8 KiB
    assert used["rchar"] < 9 * 1024 * 1024  # the last record, once
    assert verify(path).ok


_KILLED = """
import os, signal, sys
from paxis_router.governance.audit import AuditLog
log = AuditLog(sys.argv[1], key=sys.argv[2], checkpoint_every=1000)
for i in range(50):
    log.append(kind="route", decision="accept", target=str(i))
os.kill(os.getpid(), signal.SIGKILL)
"""

_CLEAN_EXIT = """
import sys
from paxis_router.governance.audit import AuditLog
log = AuditLog(sys.argv[1], key=sys.argv[2], checkpoint_every=1000)
for i in range(10):
    log.append(kind="route", decision="accept", target=str(i))
# no close(): the interpreter's exit closes it (flush + final checkpoint)
"""


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kill_9_loses_no_appended_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    proc = run_python(_KILLED, str(path), KEY)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    result = verify(path, key=KEY)
    assert (result.ok, result.records, result.checkpointed) == (True, 50, 0)
    assert result.notes == (
        "no checkpoint: deleting the newest records (truncation) is not detected",
    )


def test_a_clean_exit_flushes_and_writes_the_final_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    proc = run_python(_CLEAN_EXIT, str(path), KEY)
    assert proc.returncode == 0, proc.stderr
    result = verify(path, key=KEY)
    assert (result.ok, result.records, result.checkpointed) == (True, 10, 10)


async def test_aflush_and_aclose_from_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY, checkpoint_every=1000)
    for i in range(3):
        log.append(kind="route", decision="accept", target=str(i))
    await log.aflush()  # durable now; no checkpoint is due yet
    assert not checkpoints_path(path).exists()
    await log.aclose()  # the final checkpoint
    assert [json.loads(c)["records"] for c in checkpoints_path(path).read_text().split()] == [3]
    assert verify(path, key=KEY).checkpointed == 3
    reopened = log.append(kind="route", decision="accept")  # a closed log opens again
    assert reopened["seq"] == 3
    log.close()
    assert verify(path, key=KEY).checkpointed == 4


def test_a_background_error_is_raised_by_flush_check_and_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    blocked = tmp_path / "checkpoints-dir"
    blocked.mkdir()  # a checkpoint file that cannot be opened for writing
    log = AuditLog(path, key=KEY, checkpoints=blocked, checkpoint_every=1)
    log.append(kind="route", decision="accept")
    with pytest.raises(AuditError, match="checkpoints-dir: cannot open the checkpoint file"):
        log.flush()
    with pytest.raises(AuditError, match="cannot open the checkpoint file"):
        log.check()
    with pytest.raises(AuditError, match="cannot open the checkpoint file"):
        log.close()
    assert verify(path, key=KEY).records == 1  # the record itself is safe


def test_a_log_deleted_or_truncated_while_open_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync=False)
    log.append(kind="route", decision="accept")
    path.unlink()
    with pytest.raises(AuditError, match="deleted or moved while open"):
        log.check()
    with pytest.raises(AuditError, match="deleted or moved while open"):
        log.append(kind="route", decision="accept")
    log.close()  # rotation: close, then the next append starts a new file
    assert log.append(kind="route", decision="accept")["seq"] == 0
    path.write_bytes(b"")  # same file, cut back behind the writer's back
    with pytest.raises(AuditError, match=r"the file shrank from .* bytes while open"):
        log.append(kind="route", decision="accept")
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"")
    log.close()
    log.append(kind="route", decision="accept")
    other.replace(path)
    with pytest.raises(AuditError, match="replaced by another file while open"):
        log.check()


_KEYED_WRITER = """
import sys
from paxis_router.governance.audit import AuditLog
log = AuditLog(sys.argv[1], key=sys.argv[2], checkpoint_every=16)
for i in range(int(sys.argv[4])):
    log.append(kind="route", decision="accept", target=f"{sys.argv[3]}-{i}")
log.close()
"""


def test_several_keyed_processes_share_one_chain_and_checkpoint_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _KEYED_WRITER, str(path), KEY, f"p{w}", "40"],
            cwd=REPO,
            env=env,
        )
        for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    result = verify(path, key=KEY)
    assert (result.ok, result.records) == (True, 160)
    assert result.checkpointed == 160  # the last writer's close checkpointed the whole log


def test_a_forked_child_gets_its_own_file_lock_and_fsync_thread(tmp_path: Path) -> None:
    """A pre-forking server (gunicorn) forks after the log was opened: a child must not share
    the parent's open file (a shared ``flock`` excludes nobody) nor its dead fsync thread."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY, checkpoint_every=50)
    log.append(kind="route", decision="accept", target="before fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            os.read(read_end, 1)  # start together with the parent
            for i in range(300):
                log.append(kind="route", decision="accept", target=f"child-{i}")
            log.close()
            status = 0
        finally:
            os._exit(status)
    os.write(write_end, b"x")
    for i in range(300):
        log.append(kind="route", decision="accept", target=f"parent-{i}")
    _, status = os.waitpid(pid, 0)
    log.close()
    assert os.waitstatus_to_exitcode(status) == 0
    result = verify(path, key=KEY)
    assert (result.ok, result.records, result.error) == (True, 601, None)


def lines_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_submitted_records_land_at_check_or_at_the_end_of_the_loop_turn(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync=False)
    log.submit(kind="gate", decision="allow", target="a")
    log.submit(kind="gate", decision="allow", target="b")
    assert lines_of(path) == []  # queued: nothing written inside this turn yet
    log.check()  # before a paid call: the queued decisions are written first
    assert [r["target"] for r in lines_of(path)] == ["a", "b"]
    log.submit(kind="route", decision="accept", target="c")
    await asyncio.sleep(0)  # the turn ends: the end-of-turn write runs
    assert [r["target"] for r in lines_of(path)] == ["a", "b", "c"]
    log.submit(kind="route", decision="accept", target="d")
    appended = log.append(kind="route", decision="accept", target="e")  # queued ones first
    assert appended["seq"] == 4
    assert [r["target"] for r in lines_of(path)] == ["a", "b", "c", "d", "e"]
    log.close()
    assert (verify(path).ok, verify(path).records) == (True, 5)


def test_outside_an_event_loop_submit_writes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync=False)
    log.submit(kind="route", decision="accept", target="a")
    assert [r["target"] for r in lines_of(path)] == ["a"]
    log.close()


_QUEUED_WRITE_FAILS = r"""
import asyncio, json, resource, sys
from pathlib import Path
from paxis_router.errors import AuditError
from paxis_router.governance.audit import AuditLog, verify

path = Path(sys.argv[1])
log = AuditLog(path, fsync=False)
log.append(kind="route", decision="accept", target="0")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
out = {}

def attempt(action):
    try:
        action()
        return "ok"
    except AuditError as exc:
        return str(exc)

async def main():
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 10, hard))
    log.submit(kind="gate", decision="allow", target="1", reason="r" * 200)
    log.submit(kind="route", decision="accept", target="2")
    await asyncio.sleep(0)  # the end-of-turn write fails: the records stay queued
    out["check_over"] = attempt(log.check)
    out["records_over"] = verify(path).records
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    out["check_after"] = attempt(log.check)  # writes the queued records, in order

asyncio.run(main())
out["close"] = attempt(log.close)
result = verify(path)
out["end"] = [result.ok, result.records]
out["targets"] = [json.loads(l)["target"] for l in path.read_text().splitlines()]
print(json.dumps(out))
"""


def test_a_queued_record_that_cannot_be_written_stays_queued_and_check_refuses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    proc = run_python(_QUEUED_WRITE_FAILS, str(path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["check_over"].startswith(f"{path}: could not append a record (File too large)")
    assert out["records_over"] == 1  # nothing half-written
    assert out["check_after"] == "ok"
    assert out["close"] == "ok"
    assert out["end"] == [True, 3]
    assert out["targets"] == ["0", "1", "2"]


_EXIT_WITH_A_QUEUED_RECORD = r"""
import asyncio, sys
from pathlib import Path
from paxis_router.governance.audit import AuditLog

log = AuditLog(Path(sys.argv[1]), fsync=False)

def submit_only():
    log.submit(kind="route", decision="accept", target="queued")

loop = asyncio.new_event_loop()
loop.call_soon(submit_only)
loop.call_soon(loop.stop)  # the loop stops before the end-of-turn write it scheduled
loop.run_forever()
loop.close()
assert not Path(sys.argv[1]).exists() or Path(sys.argv[1]).read_text() == ""
"""


def test_a_record_queued_when_the_process_exits_is_written_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    proc = run_python(_EXIT_WITH_A_QUEUED_RECORD, str(path))
    assert proc.returncode == 0, proc.stderr
    assert [r["target"] for r in lines_of(path)] == ["queued"]
    assert verify(path).ok
