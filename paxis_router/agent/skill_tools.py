"""A skill's scripts as tools: each call runs in the bubblewrap sandbox, behind the gate.

The sandbox asks the gate (``run_script``) and writes the audit record itself; a denied or
refused run, a non-zero exit and a killed script all come back to the model as the tool's
output, so a step can go on.

Example:
    >>> from paxis_router.skills.model import Skill
    >>> skill = Skill("owner/structured-extraction", "structured-extraction", "Extract fields",
    ...               scripts=("scripts/check.py",))
    >>> [t.name for t in script_tools([skill], sandbox=None)]
    ['structured-extraction__check']
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from paxis_router.agent.tools import ToolOutput
from paxis_router.errors import PolicyDenied, SandboxError
from paxis_router.types import FunctionDefinition, Tool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from paxis_router.governance.sandbox import Sandbox
    from paxis_router.skills.model import Skill

_NAME = re.compile(r"[^A-Za-z0-9_\-]")
_PARAMETERS: dict[str, Any] = {  # Any: JSON schema
    "type": "object",
    "properties": {
        "args": {
            "type": "array",
            "items": {"type": "string"},
            "description": "command-line arguments for the script",
        },
        "stdin": {"type": "string", "description": "text given to the script on stdin"},
    },
    "additionalProperties": False,
}


class SkillScriptTool:
    """One script of one skill, offered to the model as a tool.

    Args:
        skill: the skill (its folder is copied read-only into the sandbox).
        script: the script's path inside the skill folder.
        sandbox: the sandbox to run it in, or a function returning it (made on first use).
        max_output_chars: stdout and stderr are cut to this many characters each.
    """

    def __init__(
        self,
        skill: Skill,
        script: str,
        sandbox: Sandbox | Callable[[], Sandbox] | None,
        *,
        max_output_chars: int = 8_000,
    ) -> None:
        self.skill = skill
        self.script = script
        self._sandbox = sandbox
        self.max_output_chars = max_output_chars
        stem = PurePosixPath(script).stem
        self.name = _NAME.sub("_", f"{skill.name}__{stem}")[:64]

    def definition(self) -> Tool:
        description = (
            f"Run the script {self.script} of the skill {self.skill.name!r} in an isolated "
            f"sandbox (no network). The skill: {self.skill.description}"
        )
        return Tool(
            function=FunctionDefinition(
                name=self.name, description=description, parameters=_PARAMETERS
            )
        )

    async def call(self, arguments: str) -> ToolOutput:
        try:
            raw = json.loads(arguments or "{}")
        except ValueError as exc:
            return ToolOutput(f"error: the arguments are not valid JSON ({exc})", ok=False)
        args = raw.get("args", []) if isinstance(raw, dict) else None
        stdin = raw.get("stdin") if isinstance(raw, dict) else None
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return ToolOutput("error: 'args' must be an array of strings", ok=False)
        if stdin is not None and not isinstance(stdin, str):
            return ToolOutput("error: 'stdin' must be a string", ok=False)
        sandbox = self._sandbox() if callable(self._sandbox) else self._sandbox
        if sandbox is None:
            return ToolOutput("error: no sandbox is configured for skill scripts", ok=False)
        try:
            run = await asyncio.to_thread(sandbox.run, self.skill, self.script, args, stdin)
        except PolicyDenied as exc:
            return ToolOutput(f"denied by policy: {exc}", ok=False)
        except SandboxError as exc:
            return ToolOutput(f"error: the sandbox refused to run it: {exc}", ok=False)
        cut = self.max_output_chars
        result = {
            "exit_code": run.exit_code,
            "stdout": run.stdout[:cut],
            "stderr": run.stderr[:cut],
            "killed_by": run.killed_by,
            "reason": run.reason or None,
        }
        return ToolOutput(json.dumps(result, ensure_ascii=False), ok=run.ok)


def script_tools(
    skills: Iterable[Skill], sandbox: Sandbox | Callable[[], Sandbox] | None
) -> list[SkillScriptTool]:
    """A tool for each script of each skill, in order."""
    return [SkillScriptTool(skill, script, sandbox) for skill in skills for script in skill.scripts]
