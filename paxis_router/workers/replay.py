"""Replaying recorded real outcomes through the real Router (demos, calibration, what-if costs).

An :class:`Outcome` is what one model really answered to one query in a benchmark run, with its
correctness label and token counts. A :class:`ReplayWorker` serves those answers by id, so a
whole ladder can be evaluated offline with the real verifiers, policy and ledger.

Token counts: the RouteLLM files carry none, so :func:`count_tokens` counts them offline with
tiktoken's ``cl100k_base`` (GPT-4's tokenizer), whose BPE file litellm bundles in its package —
nothing is downloaded. When tiktoken or that file is missing it falls back to a documented
estimate of ``ceil(len(text) / 4)`` (OpenAI's rule of thumb for English). Mixtral's own
tokenizer differs from cl100k_base by a few percent on English text; both tiers are counted with
the same tokenizer so their costs compare like for like. :func:`token_counter_name` says which.

Example:
    >>> import asyncio
    >>> from paxis_router.types import ChatRequest
    >>> worker = ReplayWorker("local:mixtral", {"q1": Outcome("#### 18", correct=True)})
    >>> request = ChatRequest.from_text("Janet's ducks...", replay_id="q1")
    >>> asyncio.run(worker.complete(request, None)).content
    '#### 18'
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import importlib.util
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError, WorkerError
from paxis_router.types import Completion, Usage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from decimal import Decimal

    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest, ToolCall

logger = logging.getLogger(__name__)

REPLAY_ID_KEY = "replay_id"

#: Model column names in the RouteLLM GSM8K CSV.
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recorded answer of one model to one query.

    This shape is shared by every loader (GSM8K here; MMLU, MT-Bench and generic JSONL in
    ``paxis_router.calibration.datasets``): keep it stable.

    Attributes:
        response: the model's answer text (``""`` when the dataset holds only labels).
        correct: the dataset's correctness label, when it has one.
        score: a graded label (e.g. an MT-Bench judge score 1-10), when it has one.
        prompt_tokens: tokens of the prompt, counted or recorded; None when unknown.
        completion_tokens: tokens of the response, counted or recorded; None when unknown.
        cost_usd: the recorded cost of the call, when the dataset has one (the router still
            prices a replayed call with its tier's price, from the token counts).
        tool_calls: the tool calls the model made, when it called tools (replayed with
            ``finish_reason "tool_calls"``).

    Example:
        >>> Outcome("42", correct=True, prompt_tokens=12, completion_tokens=1).correct
        True
        >>> from paxis_router.types import FunctionCall, ToolCall
        >>> call = ToolCall(id="c1", function=FunctionCall(name="add", arguments='{"a": 1}'))
        >>> Outcome("", tool_calls=(call,)).tool_calls[0].name
        'add'
    """

    response: str
    correct: bool | None = None
    score: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: Decimal | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def usage(self) -> Usage | None:
        """The token counts as a Usage, or None when either is unknown."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return Usage(self.prompt_tokens, self.completion_tokens)


class ReplayWorker:
    """Serves recorded outcomes: the answer for ``request.metadata["replay_id"]``, or, without
    one, for the exact text of the last user message.

    Args:
        name: the tier's stable name (``"local:mixtral-8x7b"``).
        outcomes: recorded outcomes keyed by id (or by prompt text).
        model: the model that produced them; default ``name``.
        price: how a replayed call is priced (from its token counts); None = unknown.
        destination: ``"local"`` or ``"provider:region"``, as the live tier would be.

    Raises (from ``complete``):
        WorkerError: naming the id when no outcome is recorded for it.

    Example:
        >>> ReplayWorker("frontier:gpt-4", {}, model="gpt-4-1106-preview").model
        'gpt-4-1106-preview'
    """

    def __init__(
        self,
        name: str,
        outcomes: Mapping[str, Outcome],
        *,
        model: str | None = None,
        price: Price | None = None,
        destination: str = "local",
    ):
        self.name = name
        self.model = model or name
        self.price = price
        self.destination = destination
        self.outcomes: Mapping[str, Outcome] = outcomes

    def __repr__(self) -> str:
        return f"ReplayWorker(name={self.name!r}, outcomes={len(self.outcomes)})"

    def key_of(self, request: ChatRequest) -> str:
        """The id a request replays: its ``replay_id`` metadata, else its last user message."""
        return request.metadata.get(REPLAY_ID_KEY) or request.query

    def outcome(self, key: str) -> Outcome:
        """The recorded outcome for ``key``; raises WorkerError naming it when none is."""
        try:
            return self.outcomes[key]
        except KeyError:
            shown = key if len(key) <= 80 else key[:77] + "..."
            raise WorkerError(
                f"no recorded outcome for replay id {shown!r} ({len(self.outcomes)} recorded); "
                f"set metadata[{REPLAY_ID_KEY!r}] to one of the loaded ids",
                worker=self.name,
            ) from None

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        """The recorded answer, as a Completion with the recorded token counts."""
        try:
            outcome = self.outcome(self.key_of(request))
        except WorkerError as exc:
            exc.request_id = request.request_id
            raise
        return Completion(
            content=outcome.response,
            model=self.model,
            usage=outcome.usage,
            finish_reason="tool_calls" if outcome.tool_calls else "stop",
            tool_calls=outcome.tool_calls,
        )


# --- token counting ----------------------------------------------------------------------------

_CL100K_SHA1 = hashlib.sha1(  # the file name tiktoken's cache gives cl100k_base
    b"https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    usedforsecurity=False,
).hexdigest()
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def _bundled_cl100k() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "litellm_core_utils" / "tokenizers" / _CL100K_SHA1
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _counter() -> tuple[str, Callable[[str], int]]:
    path = _bundled_cl100k()
    if path is not None and importlib.util.find_spec("tiktoken") is not None:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == _CL100K_SHA256:
            import tiktoken

            ranks = {
                base64.b64decode(token): int(rank)
                for token, rank in (line.split() for line in data.splitlines() if line)
            }
            encoding = tiktoken.Encoding(
                name="cl100k_base",
                pat_str=_CL100K_PATTERN,
                mergeable_ranks=ranks,
                special_tokens={"<|endoftext|>": 100257},
            )
            return "tiktoken:cl100k_base", lambda text: len(encoding.encode_ordinary(text))
        logger.warning("litellm's bundled cl100k_base file fails its checksum; estimating")
    logger.info("tiktoken's cl100k_base is not available offline: estimating chars/4")
    return "estimate:chars/4", lambda text: math.ceil(len(text) / 4)


def count_tokens(text: str) -> int:
    """Tokens in ``text``: tiktoken cl100k_base offline, else ``ceil(len(text) / 4)``.

    Example:
        >>> count_tokens("Hello world")
        2
    """
    return _counter()[1](text)


def token_counter_name() -> str:
    """Which counter :func:`count_tokens` uses: ``tiktoken:cl100k_base`` or ``estimate:chars/4``."""
    return _counter()[0]


# --- RouteLLM GSM8K -------------------------------------------------------------------------


def load_routellm_gsm8k(csv_path: str | Path, model: str) -> dict[str, Outcome]:
    """One model's recorded GSM8K outcomes from RouteLLM's ``gsm8k_responses.csv``, by row id.

    Ids are the row's position in the file as text (``"0"``, ``"1"``, ...), which is also the
    ``eval_idx`` of RouteLLM's contaminated-prompt list. Prompt tokens count the question as the
    single user message; completion tokens count the recorded response (see :func:`count_tokens`).
    Nothing is dropped here: use :func:`routellm_contaminated_ids` to drop contaminated prompts.

    Args:
        csv_path: the CSV (columns ``prompt``, ``<model>``, ``<model>_response`` per model).
        model: the model column, e.g. :data:`ROUTELLM_WEAK` or :data:`ROUTELLM_STRONG`.

    Raises:
        ConfigError: naming the file when it cannot be read or lacks the model's columns.

    Example:
        >>> outcomes = load_routellm_gsm8k(  # doctest: +SKIP
        ...     "benchmarks/data/routellm/gsm8k_responses.csv", ROUTELLM_WEAK
        ... )
    """
    path = Path(csv_path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            needed = ["prompt", model, f"{model}_response"]
            missing = [c for c in needed if c not in columns]
            if missing:
                raise ConfigError(
                    f"missing column(s) {missing}; model columns here: "
                    f"{[c for c in columns if c != 'prompt' and not c.endswith('_response')]}",
                    source=str(path),
                )
            return {
                str(i): _gsm8k_outcome(row, model, str(path), i) for i, row in enumerate(reader)
            }
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from exc


def routellm_prompts(csv_path: str | Path) -> dict[str, str]:
    """The prompt text of each row of a RouteLLM responses CSV, by the same ids as the loaders."""
    path = Path(csv_path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return {str(i): row["prompt"] for i, row in enumerate(csv.DictReader(handle))}
    except (OSError, KeyError) as exc:
        raise ConfigError(f"cannot read prompts: {exc}", source=str(path)) from exc


def routellm_contaminated_ids(jsonl_path: str | Path) -> frozenset[str]:
    """Row ids (``eval_idx``) RouteLLM excluded as contaminated (``contaminated_prompts.jsonl``)."""
    path = Path(jsonl_path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
        return frozenset(str(json.loads(line)["eval_idx"]) for line in lines if line.strip())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read contaminated prompt ids: {exc}", source=str(path)) from exc


def _gsm8k_outcome(row: dict[str, str], model: str, source: str, index: int) -> Outcome:
    label = row[model].strip()
    if label not in ("True", "False"):
        raise ConfigError(
            f"row {index}: correctness {label!r} is not True/False", source=source, field=model
        )
    response = row[f"{model}_response"]
    return Outcome(
        response=response,
        correct=label == "True",
        prompt_tokens=count_tokens(row["prompt"]),
        completion_tokens=count_tokens(response),
    )


def drop_ids(outcomes: Mapping[str, Outcome], ids: Iterable[str]) -> dict[str, Outcome]:
    """``outcomes`` without the given ids (e.g. contaminated prompts)."""
    dropped = set(ids)
    return {k: v for k, v in outcomes.items() if k not in dropped}
