"""Run a skill's script isolated: bubblewrap namespaces, one memory limit for the whole sandbox,
rlimits, a wall clock, capped output.

A run happens only inside a working sandbox; where none exists the run is refused with an error
that says why and how to install one (fail closed — never run unsandboxed). On Linux the script
runs under ``bwrap`` (0.8 or later) the way Flatpak starts apps:

- every namespace unshared (no network: only the sandbox's own loopback), no nested user
  namespaces (``--disable-userns``), ``--new-session`` (no controlling terminal, so no TIOCSTI
  injection), ``--die-with-parent``;
- ``--as-pid-1``: the script is PID 1 of its namespace, so no process of ours lives inside
  where the script could stop or read it; bubblewrap's monitor waits for it from outside;
- bubblewrap is started with a minimal environment of its own and its options come through a
  file descriptor (``--args``), so neither the launcher's environment nor its command line
  exists anywhere the script can read; every other descriptor is closed; stdin is a sealed,
  read-only memfd;
- ``--clearenv`` plus a small explicit environment for the script;
- the system's ``/usr`` read-only, a copy of the skill folder read-only at ``/skill`` (regular
  files with one name only: a hard link, FIFO or device is refused), a fresh writable ``/work``,
  a size-capped ``/tmp`` tmpfs, a read-only ``/dev``, no home.

Memory: ``memory_bytes`` bounds the whole sandbox — all its processes and its ``/tmp`` — with a
cgroup (v2, else v1) where this process can make one; elsewhere with rlimits that cannot add
up to more: at most ``fallback_processes`` processes of ``(memory_bytes - tmp_bytes) /
fallback_processes`` address space each, plus ``tmp_bytes`` of ``/tmp``. When paxis runs as
root each run gets its own unprivileged uid (as systemd's ``DynamicUser=`` does), so that
process counts are per run. A wall clock kills the whole run; the PID namespace takes every
leftover child with it. See docs/security.md for exactly what holds where.

Example:
    >>> sandbox = Sandbox(SandboxLimits(wall_s=5))          # doctest: +SKIP
    >>> sandbox.run("skills/math", "scripts/check.py", stdin="#### 42")  # doctest: +SKIP
    RunResult(exit_code=0, ...)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from paxis_router.errors import PolicyDenied, SandboxError
from paxis_router.governance._sandbox_cgroup import CgroupSite, RunCgroup, find_site
from paxis_router.governance._sandbox_files import read_collected, relative_name, walk_skill

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.gate import Action
    from paxis_router.skills.model import Skill

logger = logging.getLogger(__name__)

_NOBODY = 65534
# uids (and gids) for runs when paxis is root: one per run, from a block no distribution
# hands out (systemd's dynamic users live at 61184-65519), used only where it is mapped.
_RUN_ID_BLOCK = (0x5A000000, 1 << 24)
_MIB = 1 << 20
_INSTALL_HINT = (
    "install bubblewrap 0.8 or later (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf "
    "install bubblewrap) and allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1)"
)
_INTERPRETERS = {".py": "python3", ".sh": "sh", ".bash": "bash"}
# The whole environment bubblewrap (and prlimit, and the cgroup shim) start with.
_LAUNCH_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_SHELL = "/bin/sh"
_MIN_BWRAP = (0, 8, 0)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run. Sizes in bytes, times in seconds.

    ``memory_bytes`` bounds the whole sandbox, its ``/tmp`` (``tmp_bytes`` of it) included.
    ``max_processes`` is the process count under a cgroup; without one the sandbox gets at
    most ``fallback_processes`` processes (bubblewrap's monitor and the script among them),
    each with ``(memory_bytes - tmp_bytes) // fallback_processes`` of address space.

    Example:
        >>> SandboxLimits(memory_bytes=256 << 20, tmp_bytes=64 << 20).fallback_process_bytes
        50331648
    """

    wall_s: float = 30.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    tmp_bytes: int = 64 << 20
    max_processes: int = 64
    fallback_processes: int = 4
    max_open_files: int = 256
    max_file_bytes: int = 64 << 20
    max_output_bytes: int = 1 << 20
    max_skill_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        if self.memory_bytes <= self.tmp_bytes:
            raise SandboxError(
                f"memory_bytes ({self.memory_bytes}) must exceed tmp_bytes ({self.tmp_bytes}): "
                "the sandbox's /tmp counts against its memory"
            )
        if self.fallback_processes < 2:
            raise SandboxError(
                "fallback_processes must be at least 2 (bubblewrap's monitor and the script)"
            )
        for name in ("cpu_s", "tmp_bytes", "max_processes", "max_open_files", "max_file_bytes"):
            if getattr(self, name) <= 0:
                raise SandboxError(f"{name} must be positive, got {getattr(self, name)}")
        if self.wall_s <= 0:
            raise SandboxError(f"wall_s must be positive, got {self.wall_s}")

    @property
    def fallback_process_bytes(self) -> int:
        """The address space of each process where no cgroup holds the sandbox."""
        return (self.memory_bytes - self.tmp_bytes) // self.fallback_processes


@dataclass(frozen=True)
class RunResult:
    """What one sandboxed run did.

    ``killed_by`` is None for a normal exit, else one of ``timeout``, ``cpu_limit``,
    ``memory_limit``, ``output_limit``, ``file_size_limit`` or ``signal:<NAME>``; ``reason``
    says it in words. ``files`` holds the collected files; ``collect_errors`` says why each
    other collected name was left out (``no such file``, ``a symbolic link; not followed``...).
    """

    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    killed_by: str | None = None
    reason: str = ""
    output_truncated: bool = False
    files: Mapping[str, bytes] = field(default_factory=dict)
    collect_errors: Mapping[str, str] = field(default_factory=dict)

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
            "collect_errors": dict(self.collect_errors),
        }


class ScriptGate(Protocol):
    """What the sandbox asks before a run: the action gate's ``check``."""

    def check(self, action: Action, text: str | None = None) -> object: ...


def resolve_script(skill_dir: Path, script: str) -> Path:
    """The script's path inside ``skill_dir``; rejects ``..``, absolute paths and any symlink
    that leaves the skill folder, before anything runs."""
    if not script or "\x00" in script:
        raise SandboxError(f"empty or invalid script name {script!r}")
    pure = _relative_script(script)
    root = skill_dir.resolve()
    target = (skill_dir / pure).resolve()
    if not target.is_relative_to(root):
        raise SandboxError(f"script {script!r} resolves outside the skill folder {skill_dir}")
    if not target.is_file():
        raise SandboxError(f"script {script!r} not found in {skill_dir}")
    return target


def _relative_script(script: str) -> PurePosixPath:
    pure = PurePosixPath(script)
    if pure.is_absolute() or Path(script).is_absolute():
        raise SandboxError(f"script {script!r} is an absolute path; give it relative to the skill")
    if ".." in pure.parts:
        raise SandboxError(f"script {script!r} contains '..'; it must stay inside the skill")
    return pure


def _check_skill_dir(skill_dir: str | Path, limit_bytes: int) -> Path:
    if ".." in Path(skill_dir).parts:
        raise SandboxError(f"skill path {str(skill_dir)!r} contains '..'")
    path = Path(skill_dir)
    if not path.is_dir():
        raise SandboxError(f"skill folder {path} does not exist")
    root = path.resolve()
    walk_skill(root, None, limit_bytes)
    return root


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
        cgroup: hold each run in a cgroup where one can be made (default); False uses the
            rlimit bound only.
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
        cgroup: bool = True,
    ):
        self.limits = limits or SandboxLimits()
        self.gate = gate
        self.audit = audit
        self.principal = principal
        self.env = dict(env or {})
        self._bwrap = bwrap or shutil.which("bwrap")
        self._clock = clock
        self._want_cgroup = cgroup
        self._probed: bool | None = None
        self._reason = ""
        self._site: CgroupSite | None = None
        self._cgroup_reason = ""
        self._id_block: tuple[int, int] | None = None

    # --- availability -------------------------------------------------------------------------

    def available(self) -> bool:
        """True when a sandbox can actually start here (probed once, then cached)."""
        if self._probed is None:
            self._probed = self._probe()
        return self._probed

    @property
    def unavailable_reason(self) -> str:
        """Why no sandbox can start here ("" when one can)."""
        return "" if self.available() else self._reason

    @property
    def memory_guard(self) -> str:
        """What holds ``memory_bytes`` for the whole sandbox: ``cgroup v2``, ``cgroup v1`` or
        ``rlimit`` (see SandboxLimits)."""
        self.available()
        return self._site.label if self._site is not None else "rlimit"

    @property
    def cgroup_unavailable_reason(self) -> str:
        """Why runs are not held in a cgroup ("" when they are)."""
        self.available()
        return "" if self._site is not None else self._cgroup_reason

    @property
    def run_as(self) -> str:
        """Who the scripts run as, in words: a fresh uid per run (paxis is root), ``nobody``
        (root, but no spare ids are mapped here), or the uid paxis runs as."""
        if os.geteuid() != 0:
            return f"uid {os.geteuid()} (yours)"
        self.available()
        return "a fresh uid per run" if self._id_block is not None else f"nobody ({_NOBODY})"

    def _probe(self) -> bool:
        if not sys.platform.startswith("linux"):
            self._reason = f"bubblewrap needs Linux, this is {sys.platform}"
            return False
        if self._bwrap is None:
            self._reason = "bwrap not found on PATH"
            return False
        if shutil.which("prlimit") is None:
            self._reason = "prlimit (util-linux) not found on PATH"
            return False
        version = _bwrap_version(self._bwrap)
        if version is not None and version < _MIN_BWRAP:
            self._reason = (
                f"bubblewrap {'.'.join(map(str, version))} is too old: 0.8 or later is needed "
                "(--size, --disable-userns)"
            )
            return False
        self._id_block = _mapped_id_block() if os.geteuid() == 0 else None
        site: CgroupSite | None = None
        if self._want_cgroup:
            site, self._cgroup_reason = find_site()
        else:
            self._cgroup_reason = "turned off (Sandbox(cgroup=False))"
        if site is not None:
            error = self._trial(site)
            if error is None:
                self._site = site
                return True
            self._cgroup_reason = f"{site.label} trial run failed: {error}"
            logger.warning("sandbox: no cgroup, falling back to rlimits: %s", self._cgroup_reason)
        error = self._trial(None)
        if error is None:
            return True
        self._reason = error
        if "Resource temporarily unavailable" in error and os.geteuid() != 0:
            self._reason += (
                f" (without a cgroup the process limit of {self.limits.fallback_processes} "
                "counts every process of your user: see docs/security.md)"
            )
        logger.warning("bubblewrap probe failed: %s", self._reason)
        return False

    def _trial(self, site: CgroupSite | None) -> str | None:
        """Run ``true`` in a sandbox as a real run would; None when it worked, else why not."""
        with tempfile.TemporaryDirectory(prefix="paxis-probe-") as tmp:
            stage = Path(tmp)
            stage.chmod(0o755)
            try:
                result = self._execute(stage, stage, ["/usr/bin/true"], None, site, wall_s=10)
            except (OSError, SandboxError) as exc:
                return str(exc)
        if result.ok:
            return None
        return result.stderr.strip() or result.reason

    def _require(self) -> None:
        if not self.available():
            raise SandboxError(
                f"no working sandbox on this machine ({self._reason}); refusing to run: "
                f"{_INSTALL_HINT}"
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
        work-dir files to read back into ``RunResult.files``: regular files only, never
        through a link (``RunResult.collect_errors`` says why a name was left out). Raises
        SandboxError before running anything when the paths are unsafe or no sandbox exists,
        PolicyDenied when the gate says no.
        """
        skill_dir, skill_id = _skill_location(skill)
        root = _check_skill_dir(skill_dir, self.limits.max_skill_bytes)
        target = resolve_script(root, script)
        inputs = {relative_name(name, "file name"): data for name, data in (files or {}).items()}
        wanted = [relative_name(name, "collected file name") for name in collect]
        decision = self._check_gate(skill_id, script)
        self._require()
        relative = target.relative_to(root).as_posix()
        run_id = self._run_id()
        with tempfile.TemporaryDirectory(prefix="paxis-sbx-") as tmp:
            stage = Path(tmp)
            stage.chmod(0o755)
            skill_copy, work = stage / "skill", stage / "work"
            walk_skill(root, skill_copy, self.limits.max_skill_bytes)
            work.mkdir()
            for name, content in inputs.items():
                dest = work / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(content.encode() if isinstance(content, str) else content)
            if run_id is not None:
                for path in (work, *work.rglob("*")):
                    os.chown(path, run_id, run_id, follow_symlinks=False)
            command = [*_interpreter(target), f"/skill/{relative}", *args]
            data = stdin.encode() if isinstance(stdin, str) else stdin
            result = self._execute(skill_copy, work, command, data, self._site, run_id=run_id)
            if wanted:
                found, errors = read_collected(work, wanted, self.limits.max_file_bytes)
                result = replace(result, files=found, collect_errors=errors)
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
                f"running {skill_id}/{script} denied by the policy gate: {reason}",
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
            memory_guard=self.memory_guard if result else None,
            payload=" ".join([script, *args]),
            **decision,
        )

    def _run_id(self) -> int | None:
        """The uid (and gid) of a run: a fresh unprivileged one when we are root (``nobody``
        where no spare block of ids is mapped), else ourselves (None: no switch)."""
        if os.geteuid() != 0:
            return None
        if self._id_block is None:
            return _NOBODY
        start, count = self._id_block
        return start + secrets.randbelow(count)

    def _options(self, skill_dir: Path, work: Path) -> list[str]:
        """bubblewrap's options (passed through ``--args``, never on its command line)."""
        options = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
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
                options += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                options += ["--ro-bind", str(host), f"/{name}"]
        options += [
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
            "--remount-ro",
            "/dev",
            "--size",
            str(self.limits.tmp_bytes),
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
            options += ["--setenv", key, value]
        return options

    def _limited(self, argv: list[str], *, in_cgroup: bool) -> list[str]:
        """``argv`` under prlimit(1): rlimits set by a separate program, so that no Python code
        runs between fork and exec (unsafe in a threaded parent). In a cgroup the cgroup counts
        processes; without one the process count times the address space stays within
        ``memory_bytes - tmp_bytes``."""
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise SandboxError(f"prlimit (util-linux) is missing; refusing to run: {_INSTALL_HINT}")
        limits = self.limits
        if in_cgroup:
            counted = [f"--as={limits.memory_bytes}"]
        else:
            counted = [
                f"--as={limits.fallback_process_bytes}",
                f"--nproc={limits.fallback_processes}",
            ]
        return [
            prlimit,
            f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            *counted,
            f"--nofile={limits.max_open_files}",
            f"--fsize={limits.max_file_bytes}",
            "--core=0",
            "--",
            *argv,
        ]

    def _execute(
        self,
        skill_dir: Path,
        work: Path,
        command: Sequence[str],
        stdin: bytes | None,
        site: CgroupSite | None,
        *,
        run_id: int | None = None,
        wall_s: float | None = None,
    ) -> RunResult:
        if run_id is None:
            run_id = self._run_id()
        cgroup = None
        if site is not None:
            cgroup = site.create(
                memory_bytes=self.limits.memory_bytes, max_processes=self.limits.max_processes
            )
        try:
            options = self._options(skill_dir, work)
            return self._launch(options, command, stdin, cgroup, run_id, wall_s)
        finally:
            if cgroup is not None:
                cgroup.remove()

    def _launch(
        self,
        options: list[str],
        command: Sequence[str],
        stdin: bytes | None,
        cgroup: RunCgroup | None,
        run_id: int | None,
        wall_s: float | None,
    ) -> RunResult:
        assert self._bwrap is not None
        limits = self.limits
        args_fd = _memfd("paxis-bwrap-args", b"".join(o.encode() + b"\0" for o in options))
        stdin_fd = _memfd("paxis-stdin", stdin or b"")
        try:
            argv = self._limited(
                [self._bwrap, "--args", str(args_fd), "--", *command], in_cgroup=bool(cgroup)
            )
            if cgroup is not None:
                # Stopped until we have moved it into the cgroup: bubblewrap starts inside.
                argv = [_SHELL, "-c", 'kill -STOP "$$" && exec "$@"', "paxis-sandbox", *argv]
            started = self._clock()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=stdin_fd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=[args_fd],
                    env=dict(_LAUNCH_ENV),
                    start_new_session=True,
                    user=run_id,
                    group=run_id,
                    extra_groups=[] if run_id is not None else None,
                )
            except OSError as exc:
                raise SandboxError(f"cannot start bubblewrap: {exc}; {_INSTALL_HINT}") from exc
        finally:
            os.close(args_fd)
            os.close(stdin_fd)
        if cgroup is not None:
            _enter(proc, cgroup)
        deadline = started + (wall_s if wall_s is not None else limits.wall_s)
        try:
            out, err, killed_by = self._collect(proc, deadline)
        except BaseException:
            _kill_group(proc)
            _reap(proc)
            raise
        if killed_by is not None:
            _kill_group(proc)
            if cgroup is not None:
                cgroup.kill_all()
        code, cpu_used_s = _reap(proc)
        duration = self._clock() - started
        oom_kills = cgroup.oom_kills() if cgroup is not None else 0
        if killed_by is None and oom_kills:
            killed_by = "memory_limit"
        killed_by = killed_by or _signal_cause(code, cpu_used_s, limits)
        return RunResult(
            exit_code=None if killed_by else code,
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            duration_s=duration,
            killed_by=killed_by,
            reason=_describe(code, killed_by, limits, wall_s, oom_kills),
            output_truncated=killed_by == "output_limit",
        )

    def _collect(
        self, proc: subprocess.Popen[bytes], deadline: float
    ) -> tuple[bytes, bytes, str | None]:
        """Read stdout and stderr until bubblewrap's monitor exits (the run's end: it lives
        outside the sandbox and exits when the script does), the deadline, or the output cap."""
        assert proc.stdout is not None and proc.stderr is not None
        pipes = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        cap = self.limits.max_output_bytes
        pidfd = _pidfd(proc.pid)

        def done(why: str | None) -> tuple[bytes, bytes, str | None]:
            return bytes(pipes[out_fd]), bytes(pipes[err_fd]), why

        try:
            with selectors.DefaultSelector() as selector:
                for fd in pipes:
                    selector.register(fd, selectors.EVENT_READ)
                if pidfd is not None:
                    selector.register(pidfd, selectors.EVENT_READ)
                while True:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return done("timeout")
                    wait = min(remaining, 0.5 if pidfd is not None else 0.05)
                    exited = False
                    for key, _ in selector.select(timeout=wait):
                        if key.fd == pidfd:
                            exited = True
                            continue
                        chunk = os.read(key.fd, 65536)
                        if not chunk:
                            selector.unregister(key.fd)
                            continue
                        if _append_capped(pipes[key.fd], chunk, cap):
                            return done("output_limit")
                    if exited or (pidfd is None and _has_exited(proc.pid)):
                        for fd in [k.fd for k in selector.get_map().values() if k.fd in pipes]:
                            if _drain(fd, pipes[fd], cap):
                                return done("output_limit")
                        return done(None)
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _skill_location(skill: Skill | str | Path) -> tuple[Path, str]:
    if isinstance(skill, str | Path):
        path = Path(skill)
        return path, path.name
    if skill.path is None:
        raise SandboxError(f"skill {skill.id!r} has no folder on disk")
    # A parsed Skill's path is its SKILL.md; the folder around it is what the sandbox copies.
    folder = skill.path.parent if skill.path.name == "SKILL.md" else skill.path
    return folder, skill.id


def _interpreter(target: Path) -> list[str]:
    name = _INTERPRETERS.get(target.suffix)
    if name is None:
        return []
    for folder in ("/usr/bin", "/usr/local/bin"):
        if (Path(folder) / name).exists():
            return [f"{folder}/{name}"]
    raise SandboxError(f"no {name} interpreter under /usr for {target.name}")


def _memfd(name: str, data: bytes) -> int:
    """A sealed, read-only in-memory file holding ``data``, its offset at 0."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError:
        os.close(fd)
        raise
    return fd


def _bwrap_version(bwrap: str) -> tuple[int, ...] | None:
    """bubblewrap's version (``bwrap --version``: "bubblewrap 0.8.0"), None if unreadable."""
    try:
        done = subprocess.run(
            [bwrap, "--version"], capture_output=True, timeout=10, check=False, env=_LAUNCH_ENV
        )
        words = done.stdout.decode(errors="replace").split()
        return tuple(int(part) for part in words[-1].split("."))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _mapped_id_block() -> tuple[int, int] | None:
    """The per-run id block, when both our uid and gid maps cover it; else None."""
    start, count = _RUN_ID_BLOCK
    for name in ("uid_map", "gid_map"):
        try:
            lines = Path(f"/proc/self/{name}").read_text().splitlines()
        except OSError:
            return None
        covered = False
        for line in lines:
            inside, _, length = (int(x) for x in line.split())
            if inside <= start and start + count <= inside + length:
                covered = True
        if not covered:
            return None
    return _RUN_ID_BLOCK


def _enter(proc: subprocess.Popen[bytes], cgroup: RunCgroup) -> None:
    """Move the stopped launcher into ``cgroup``, then let it go on (to exec bubblewrap)."""
    try:
        event = os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        if event is None or event.si_code != os.CLD_STOPPED:
            raise OSError(f"the launcher ended before it could be moved (code {event})")
        cgroup.attach(proc.pid)
        os.kill(proc.pid, signal.SIGCONT)
    except OSError as exc:
        _kill_group(proc)
        _reap(proc)
        raise SandboxError(f"cannot move the sandbox into its cgroup: {exc}") from exc


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux before 5.3: poll instead
        return None


def _has_exited(pid: int) -> bool:
    """True once ``pid`` has exited; it is left to reap (WNOWAIT)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _append_capped(buffer: bytearray, chunk: bytes, cap: int) -> bool:
    """Append ``chunk``; True (and the buffer cut to ``cap``) when it went over."""
    buffer += chunk
    if len(buffer) > cap:
        del buffer[cap:]
        return True
    return False


def _drain(fd: int, buffer: bytearray, cap: int) -> bool:
    """Read what is left in a pipe without waiting; True when the cap was passed."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        if _append_capped(buffer, chunk, cap):
            return True


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for the launcher; its exit code and the CPU seconds of the whole run."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the launcher's process group: bubblewrap's monitor dies, and with it (by
    ``--die-with-parent``) the script, whose PID namespace takes every other process along."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _signal_cause(code: int, cpu_used_s: float, limits: SandboxLimits) -> str | None:
    number = -code if code < 0 else code - 128 if code > 128 else 0
    if number <= 0:
        return None
    # As PID 1 the script ignores SIGXCPU at the soft limit; the kernel's SIGKILL at the hard
    # limit (a second later) ends it.
    if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_used_s >= limits.cpu_s):
        return "cpu_limit"
    if number == signal.SIGXFSZ:
        return "file_size_limit"
    try:
        return f"signal:{signal.Signals(number).name}"
    except ValueError:
        return f"signal:{number}"


def _size(count: int) -> str:
    return f"{count // _MIB} MiB" if count % _MIB == 0 else f"{count} bytes"


def _describe(
    code: int, killed_by: str | None, limits: SandboxLimits, wall_s: float | None, oom: int
) -> str:
    if killed_by == "timeout":
        return f"killed: wall-clock limit of {wall_s or limits.wall_s:g} s reached"
    if killed_by == "output_limit":
        return f"killed: output over {limits.max_output_bytes} bytes"
    if killed_by == "memory_limit":
        return (
            f"killed: the sandbox's memory limit of {_size(limits.memory_bytes)} was reached "
            f"({oom} process{'es' if oom != 1 else ''} killed)"
        )
    if killed_by == "cpu_limit":
        return f"killed: CPU time limit of {limits.cpu_s} s reached"
    if killed_by == "file_size_limit":
        return f"killed: a file grew over {limits.max_file_bytes} bytes"
    if killed_by is not None:
        return f"killed by {killed_by.removeprefix('signal:')}"
    return f"exited with status {code}"
