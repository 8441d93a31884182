"""Run a skill's script isolated: bubblewrap namespaces, rlimits, a wall clock, capped output.

A run happens only inside a working sandbox; where none exists the run is refused with an error
that says how to install one (fail closed — never run unsandboxed). On Linux the script runs
under ``bwrap`` with every namespace unshared (no network: only the sandbox's own loopback),
``--new-session`` (no controlling terminal, so no TIOCSTI injection), ``--die-with-parent``,
``--clearenv`` plus a small explicit environment, the system's ``/usr`` read-only, a copy of the
skill folder read-only at ``/skill``, a fresh writable ``/work``, a private ``/tmp``, and no
home. When paxis runs as root, the sandbox runs as ``nobody`` so that the process-count rlimit
holds. rlimits cap CPU time, address space, processes, open files and file size; a wall-clock
timeout kills the whole process group, and the PID namespace takes every leftover child with it.

Example:
    >>> sandbox = Sandbox(SandboxLimits(wall_s=5))          # doctest: +SKIP
    >>> sandbox.run("skills/math", "scripts/check.py", stdin="#### 42")  # doctest: +SKIP
    RunResult(exit_code=0, ...)
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from paxis_router.errors import PolicyDenied, SandboxError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from paxis_router.governance.audit import AuditLog
    from paxis_router.skills.model import Skill

logger = logging.getLogger(__name__)

_NOBODY = 65534
_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap) and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
)
_INTERPRETERS = {".py": "python3", ".sh": "sh", ".bash": "bash"}


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run. Sizes in bytes, times in seconds."""

    wall_s: float = 30.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    max_processes: int = 64
    max_open_files: int = 256
    max_file_bytes: int = 64 << 20
    max_output_bytes: int = 1 << 20
    max_skill_bytes: int = 256 << 20


@dataclass(frozen=True)
class RunResult:
    """What one sandboxed run did.

    ``killed_by`` is None for a normal exit, else one of ``timeout``, ``cpu_limit``,
    ``output_limit``, ``file_size_limit`` or ``signal:<NAME>``; ``reason`` says it in words.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    killed_by: str | None = None
    reason: str = ""
    output_truncated: bool = False
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_by is None

    def to_json(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration_s": round(self.duration_s, 6),
            "killed_by": self.killed_by,
            "reason": self.reason,
            "output_truncated": self.output_truncated,
        }


class ScriptGate(Protocol):
    """What the sandbox asks before a run: the action gate's ``check``."""

    def check(self, action: object, text: str | None = None) -> object: ...


def resolve_script(skill_dir: Path, script: str) -> Path:
    """The script's path inside ``skill_dir``; rejects ``..``, absolute paths and any symlink
    that leaves the skill folder, before anything runs."""
    if not script or "\x00" in script:
        raise SandboxError(f"empty or invalid script name {script!r}")
    pure = PurePosixPath(script)
    if pure.is_absolute() or Path(script).is_absolute():
        raise SandboxError(f"script {script!r} is an absolute path; give it relative to the skill")
    if ".." in pure.parts:
        raise SandboxError(f"script {script!r} contains '..'; it must stay inside the skill")
    root = skill_dir.resolve()
    target = (skill_dir / pure).resolve()
    if not target.is_relative_to(root):
        raise SandboxError(f"script {script!r} resolves outside the skill folder {skill_dir}")
    if not target.is_file():
        raise SandboxError(f"script {script!r} not found in {skill_dir}")
    return target


def _check_skill_dir(skill_dir: str | Path) -> Path:
    if ".." in Path(skill_dir).parts:
        raise SandboxError(f"skill path {str(skill_dir)!r} contains '..'")
    path = Path(skill_dir)
    if not path.is_dir():
        raise SandboxError(f"skill folder {path} does not exist")
    root = path.resolve()
    for item in root.rglob("*"):
        if item.is_symlink() and not item.resolve().is_relative_to(root):
            raise SandboxError(f"symlink {item} leaves the skill folder {root}; refusing to run")
    return root


def _copy_skill(source: Path, dest: Path, limit_bytes: int) -> None:
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    if total > limit_bytes:
        raise SandboxError(f"skill folder {source} holds {total} bytes, over {limit_bytes}")
    shutil.copytree(source, dest, symlinks=True)


class Sandbox:
    """Runs skill scripts in bubblewrap. See the module docs for the isolation it gives.

    Args:
        limits: resource limits of each run.
        gate: optional action gate; each run is checked as a ``run_script`` action first and a
            denial raises PolicyDenied without running anything.
        audit: optional audit log; each run (or refusal) is appended to it.
        principal: who runs the scripts (a team or operator id) for the gate and the audit log.
        env: extra environment variables for the script (nothing else of ours leaks in).
        bwrap: the bubblewrap executable (default: found on PATH).
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        gate: ScriptGate | None = None,
        audit: AuditLog | None = None,
        principal: str = "operator",
        env: Mapping[str, str] | None = None,
        bwrap: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limits = limits or SandboxLimits()
        self.gate = gate
        self.audit = audit
        self.principal = principal
        self.env = dict(env or {})
        self._bwrap = bwrap or shutil.which("bwrap")
        self._clock = clock
        self._probed: bool | None = None

    # --- availability -------------------------------------------------------------------------

    def available(self) -> bool:
        """True when a sandbox can actually start here (probed once, then cached)."""
        if self._probed is None:
            self._probed = self._probe()
        return self._probed

    def _probe(self) -> bool:
        if self._bwrap is None or os.name != "posix":
            return False
        with tempfile.TemporaryDirectory(prefix="paxis-probe-") as tmp:
            Path(tmp).chmod(0o755)
            argv = self._limited(self._argv(Path(tmp), Path(tmp), ["/bin/true"]))
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    timeout=10,
                    check=False,
                    user=self._run_as,
                    group=self._run_as,
                    extra_groups=[] if self._run_as is not None else None,
                )
            except (OSError, subprocess.SubprocessError, SandboxError) as exc:
                logger.warning("bubblewrap probe failed: %s", exc)
                return False
        if done.returncode != 0:
            logger.warning("bubblewrap probe failed: %s", done.stderr.decode(errors="replace"))
        return done.returncode == 0

    def _require(self) -> None:
        if not self.available():
            raise SandboxError(
                f"no working sandbox on this machine; refusing to run: {_INSTALL_HINT}"
            )

    # --- running ------------------------------------------------------------------------------

    def run(
        self,
        skill: Skill | str | Path,
        script: str,
        args: Sequence[str] = (),
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> RunResult:
        """Run ``script`` (relative to the skill folder) with ``args`` in a fresh sandbox.

        ``files`` are written into the work dir first (relative names only); ``collect`` names
        work-dir files to read back into ``RunResult.files``. Raises SandboxError before running
        anything when the paths are unsafe or no sandbox exists, PolicyDenied when the gate says no.
        """
        skill_dir, skill_id = _skill_location(skill)
        root = _check_skill_dir(skill_dir)
        target = resolve_script(root, script)
        decision = self._check_gate(skill_id, script)
        self._require()
        relative = target.relative_to(root).as_posix()
        with tempfile.TemporaryDirectory(prefix="paxis-sbx-") as tmp:
            stage = Path(tmp)
            stage.chmod(0o755)
            skill_copy, work = stage / "skill", stage / "work"
            _copy_skill(root, skill_copy, self.limits.max_skill_bytes)
            work.mkdir()
            for name, content in (files or {}).items():
                dest = _inside(work, name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(content.encode() if isinstance(content, str) else content)
            if os.geteuid() == 0:
                for path in (work, *work.rglob("*")):
                    os.chown(path, _NOBODY, _NOBODY)
            command = [*_interpreter(target), f"/skill/{relative}", *args]
            argv = self._argv(skill_copy, work, command)
            data = stdin.encode() if isinstance(stdin, str) else stdin
            result = self._execute(argv, data)
            collected = {
                name: _inside(work, name).read_bytes()
                for name in collect
                if _inside(work, name).is_file()
            }
        if collected:
            result = _with_files(result, collected)
        self._audit(skill_id, script, args, decision, reason=result.reason, result=result)
        return result

    def _check_gate(self, skill_id: str, script: str) -> dict[str, object]:
        """Ask the gate (when configured); return the decision's audit fields, or raise."""
        if self.gate is None:
            return {"decision": "allow", "rule_id": None, "policy_version": None}
        from paxis_router.governance.gate import Action

        action = Action(
            kind="run_script",
            target=script,
            destination="local",
            principal=self.principal,
            skill=skill_id,
        )
        decision = self.gate.check(action)
        fields: dict[str, object] = {
            "decision": getattr(decision, "effect", "deny"),
            "rule_id": getattr(decision, "rule_id", None),
            "policy_version": getattr(decision, "policy_version", None),
        }
        if not getattr(decision, "allowed", False):
            reason = str(getattr(decision, "reason", "denied"))
            self._audit(skill_id, script, (), fields, reason=reason)
            raise PolicyDenied(
                f"running {skill_id}/{script} denied: {reason}",
                rule_id=str(fields["rule_id"]) if fields["rule_id"] else None,
            )
        return fields

    def _audit(
        self,
        skill_id: str,
        script: str,
        args: Sequence[str],
        decision: Mapping[str, object],
        *,
        reason: str,
        result: RunResult | None = None,
    ) -> None:
        if self.audit is None:
            return
        self.audit.append(
            kind="sandbox",
            principal=self.principal,
            action="run_script",
            target=script,
            skill=skill_id,
            destination="local",
            reason=reason,
            exit_code=result.exit_code if result else None,
            killed_by=result.killed_by if result else None,
            payload=" ".join([script, *args]),
            **decision,
        )

    @property
    def _run_as(self) -> int | None:
        """The uid (and gid) the sandbox runs as: ``nobody`` when we are root, else ourselves."""
        return _NOBODY if os.geteuid() == 0 else None

    def _argv(self, skill_dir: Path, work: Path, command: Sequence[str]) -> list[str]:
        assert self._bwrap is not None
        argv = [
            self._bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in ("bin", "lib", "lib64", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        argv += [
            "--ro-bind-try",
            "/etc/alternatives",
            "/etc/alternatives",
            "--ro-bind-try",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--ro-bind",
            str(skill_dir),
            "/skill",
            "--bind",
            str(work),
            "/work",
            "--chdir",
            "/work",
        ]
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/work",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.env,
        }
        for key, value in environment.items():
            argv += ["--setenv", key, value]
        return [*argv, "--", *command]

    def _limited(self, argv: list[str]) -> list[str]:
        """``argv`` under prlimit(1): rlimits set by a separate program, so that no Python code
        runs between fork and exec (unsafe in a threaded parent)."""
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise SandboxError(f"prlimit (util-linux) is missing; refusing to run: {_INSTALL_HINT}")
        limits = self.limits
        return [
            prlimit,
            f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            f"--as={limits.memory_bytes}",
            f"--nproc={limits.max_processes}",
            f"--nofile={limits.max_open_files}",
            f"--fsize={limits.max_file_bytes}",
            "--core=0",
            "--",
            *argv,
        ]

    def _execute(self, argv: list[str], stdin: bytes | None) -> RunResult:
        limits = self.limits
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin or b"")
            stdin_file.seek(0)
            started = self._clock()
            try:
                proc = subprocess.Popen(
                    self._limited(argv),
                    stdin=stdin_file,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    user=self._run_as,
                    group=self._run_as,
                    extra_groups=[] if self._run_as is not None else None,
                )
            except OSError as exc:
                raise SandboxError(f"cannot start bubblewrap: {exc}; {_INSTALL_HINT}") from exc
        out, err, killed_by = self._collect(proc, started + limits.wall_s)
        if killed_by is not None:
            _kill_group(proc)
        code = proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        duration = self._clock() - started
        killed_by = killed_by or _signal_cause(code)
        text_out = out.decode("utf-8", errors="replace")
        text_err = err.decode("utf-8", errors="replace")
        return RunResult(
            exit_code=None if killed_by else code,
            stdout=text_out,
            stderr=text_err,
            duration_s=duration,
            killed_by=killed_by,
            reason=_describe(code, killed_by, limits),
            output_truncated=killed_by == "output_limit",
        )

    def _collect(
        self, proc: subprocess.Popen[bytes], deadline: float
    ) -> tuple[bytes, bytes, str | None]:
        assert proc.stdout is not None and proc.stderr is not None
        buffers: dict[int, bytearray] = {proc.stdout.fileno(): bytearray()}
        buffers[proc.stderr.fileno()] = bytearray()
        cap = self.limits.max_output_bytes
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            selector.register(proc.stderr, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return (
                        bytes(buffers[proc.stdout.fileno()]),
                        bytes(buffers[proc.stderr.fileno()]),
                        "timeout",
                    )
                for key, _ in selector.select(timeout=min(remaining, 0.5)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer = buffers[key.fd]
                    buffer += chunk
                    if len(buffer) > cap:
                        del buffer[cap:]
                        return (
                            bytes(buffers[proc.stdout.fileno()]),
                            bytes(buffers[proc.stderr.fileno()]),
                            "output_limit",
                        )
        # Pipes closed: the sandbox is gone or about to be; wait out the rest of the wall clock.
        try:
            proc.wait(timeout=max(deadline - self._clock(), 0.01))
        except subprocess.TimeoutExpired:
            return (
                bytes(buffers[proc.stdout.fileno()]),
                bytes(buffers[proc.stderr.fileno()]),
                "timeout",
            )
        return bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()]), None


def _skill_location(skill: Skill | str | Path) -> tuple[Path, str]:
    if isinstance(skill, str | Path):
        path = Path(skill)
        return path, path.name
    if skill.path is None:
        raise SandboxError(f"skill {skill.id!r} has no folder on disk")
    # A parsed Skill's path is its SKILL.md; the folder around it is what the sandbox copies.
    folder = skill.path.parent if skill.path.name == "SKILL.md" else skill.path
    return folder, skill.id


def _inside(work: Path, name: str) -> Path:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not name:
        raise SandboxError(f"file name {name!r} must be relative and stay inside the work dir")
    return work / pure


def _interpreter(target: Path) -> list[str]:
    name = _INTERPRETERS.get(target.suffix)
    if name is None:
        return []
    for folder in ("/usr/bin", "/usr/local/bin"):
        if (Path(folder) / name).exists():
            return [f"{folder}/{name}"]
    raise SandboxError(f"no {name} interpreter under /usr for {target.name}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _signal_cause(code: int) -> str | None:
    number = -code if code < 0 else code - 128 if code > 128 else 0
    if number <= 0:
        return None
    if number == signal.SIGXCPU:
        return "cpu_limit"
    if number == signal.SIGXFSZ:
        return "file_size_limit"
    try:
        return f"signal:{signal.Signals(number).name}"
    except ValueError:
        return f"signal:{number}"


def _describe(code: int, killed_by: str | None, limits: SandboxLimits) -> str:
    if killed_by == "timeout":
        return f"killed: wall-clock limit of {limits.wall_s:g} s reached"
    if killed_by == "output_limit":
        return f"killed: output over {limits.max_output_bytes} bytes"
    if killed_by == "cpu_limit":
        return f"killed: CPU time limit of {limits.cpu_s} s reached"
    if killed_by == "file_size_limit":
        return f"killed: a file grew over {limits.max_file_bytes} bytes"
    if killed_by is not None:
        return f"killed by {killed_by.removeprefix('signal:')}"
    return f"exited with status {code}"


def _with_files(result: RunResult, files: Mapping[str, bytes]) -> RunResult:
    from dataclasses import replace

    return replace(result, files=dict(files))
