"""The orchestrator: an ``Agent`` runs one task as a loop of routed steps, its tool calls run as
gated, audited actions (Python functions in-process, skill scripts in the sandbox)."""

from __future__ import annotations

from paxis_router.agent.loop import (
    Agent,
    AgentStep,
    Conversation,
    StopReason,
    TaskResult,
    ToolRun,
)
from paxis_router.agent.skill_tools import SkillScriptTool, script_tools
from paxis_router.agent.tools import AgentTool, FunctionTool, ToolOutput, function_tool

__all__ = [
    "Agent",
    "AgentStep",
    "AgentTool",
    "Conversation",
    "FunctionTool",
    "SkillScriptTool",
    "StopReason",
    "TaskResult",
    "ToolOutput",
    "ToolRun",
    "function_tool",
    "script_tools",
]
