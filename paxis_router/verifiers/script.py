"""ScriptVerifier: a skill's own check script, run in the sandbox, judges the worker's answer.

The answer goes to the script on stdin (or as a file in its work dir). Exit status 0 passes,
anything else fails. When the script prints a JSON object on stdout with ``passed``, ``score`` or
``reason``, those fill the verdict (``passed`` from JSON must agree with a zero exit to pass).
A script that cannot run (no sandbox, denied, killed) is a failed verdict saying why — never a
pass, and never an exception. The verdict's reason is untrusted text: it is cut to
``max_reason_chars`` and secret-looking strings in it are redacted
(:func:`paxis_router.governance.secrets.scrub_secrets`) before it reaches the ledger or a caller.

Example:
    >>> ScriptVerifier("skills/extraction", "scripts/check.py").name  # doctest: +SKIP
    'script:extraction/scripts/check.py'
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from paxis_router.errors import PaxisError
from paxis_router.governance.sandbox import RunResult, Sandbox
from paxis_router.governance.secrets import scrub_secrets
from paxis_router.types import ChatRequest, Completion, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.skills.model import Skill


class ScriptVerifier:
    """Runs ``script`` from ``skill`` in a Sandbox on each answer.

    Args:
        skill: the skill (or its folder) that holds the script.
        script: the script's path relative to the skill folder.
        args: extra arguments for the script.
        answer_via: ``stdin`` (default) or ``file`` (written as ``answer_file`` in the work dir,
            whose name is passed as the last argument).
        sandbox: the Sandbox to use (default: one with default limits).
        name: the verifier's stable name (default ``script:<skill>/<script>``).
        max_reason_chars: the longest verdict reason kept (secrets redacted first).
    """

    def __init__(
        self,
        skill: Skill | str | Path,
        script: str,
        *,
        args: Sequence[str] = (),
        answer_via: Literal["stdin", "file"] = "stdin",
        answer_file: str = "answer.txt",
        sandbox: Sandbox | None = None,
        name: str | None = None,
        max_reason_chars: int = 500,
    ):
        self.skill = skill
        self.script = script
        self.args = tuple(args)
        self.answer_via = answer_via
        self.answer_file = answer_file
        self.sandbox = sandbox or Sandbox()
        label = skill.id if not isinstance(skill, str | Path) else Path(skill).name
        self.name = name or f"script:{label}/{script}"
        self.max_reason_chars = max_reason_chars

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        try:
            result = await asyncio.to_thread(self._run, completion.content)
        except PaxisError as exc:
            return Verdict(
                self.name, False, None, self._bounded(f"check script could not run: {exc}")
            )
        return self._verdict(result)

    def _bounded(self, reason: str) -> str:
        return scrub_secrets(reason, max_chars=self.max_reason_chars)

    def _run(self, answer: str) -> RunResult:
        if self.answer_via == "file":
            return self.sandbox.run(
                self.skill,
                self.script,
                [*self.args, self.answer_file],
                files={self.answer_file: answer},
            )
        return self.sandbox.run(self.skill, self.script, self.args, stdin=answer)

    def _verdict(self, result: RunResult) -> Verdict:
        if result.killed_by is not None:
            return Verdict(self.name, False, None, self._bounded(f"check script {result.reason}"))
        report = _json_report(result.stdout)
        passed = result.exit_code == 0 and bool(report.get("passed", True))
        score = report.get("score")
        reason = report.get("reason")
        if not isinstance(reason, str):
            tail = (result.stderr or result.stdout).strip().splitlines()
            reason = tail[-1] if tail else result.reason
        return Verdict(
            self.name,
            passed,
            float(score) if isinstance(score, int | float) else None,
            self._bounded(reason),
        )


def _json_report(stdout: str) -> dict[str, object]:
    text = stdout.strip()
    if not text.startswith("{"):
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
