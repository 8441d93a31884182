"""OpenTelemetry attribute keys, in one place: the GenAI semantic conventions and ours (paxis.*).

Example:
    >>> GEN_AI_REQUEST_MODEL, PAXIS_COST_USD
    ('gen_ai.request.model', 'paxis.cost_usd')
"""

from __future__ import annotations

# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
ERROR_TYPE = "error.type"

# The operation every attempt performs.
OPERATION_CHAT = "chat"

# paxis.* attributes. Money is a decimal string (exact, as in the ledger); absent when unknown.
PAXIS_ROUTE_ID = "paxis.route_id"
PAXIS_REQUEST_ID = "paxis.request_id"
PAXIS_ATTEMPT_INDEX = "paxis.attempt_index"
PAXIS_TIER = "paxis.tier"
PAXIS_TIER_INDEX = "paxis.tier_index"
PAXIS_TEAM = "paxis.team"
PAXIS_SKILL = "paxis.skill"
PAXIS_DATA_CLASS = "paxis.data_class"
PAXIS_DECISION = "paxis.decision"
PAXIS_REASON = "paxis.reason"
PAXIS_PASSED = "paxis.passed"
PAXIS_COST_USD = "paxis.cost_usd"
PAXIS_COUNTERFACTUAL_USD = "paxis.counterfactual_usd"
PAXIS_ATTEMPTS = "paxis.attempts"
PAXIS_DEGRADED = "paxis.degraded"
PAXIS_BUDGET_CAPPED = "paxis.budget_capped"
PAXIS_VERDICTS_FAILED = "paxis.verdicts_failed"

# Content capture (prompt and completion text): not emitted; see ledger/otel.py.
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
