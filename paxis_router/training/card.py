"""The Markdown form of a distillation data card (distill.py writes it beside the JSON)."""

from __future__ import annotations

from typing import Any


def render_card_markdown(card: dict[str, Any]) -> str:  # Any: the card's JSON form
    """``data_card.md``: the card's JSON form as a short Markdown document."""
    rows = card["rows"]
    dates = card["date_range"]
    filters = card["filters"]
    lines = [
        f"# Data card: {card['kind']} export",
        "",
        f"- rows: {rows['train']} train, {rows['eval']} eval "
        f"({card['eval_percent']} % of prompts held out by hash)",
        f"- date range (UTC): {dates['first'] or '-'} to {dates['last'] or '-'}",
        f"- what the exported routes cost: ${card['cost_usd']} "
        f"({card['unpriced_attempts']} attempt(s) with an unknown price left out)",
        f"- PII values redacted: {card['redacted_values']}",
        f"- filters: skill={filters['skill'] or 'any'}, since={filters['since'] or '-'}, "
        f"until={filters['until'] or '-'}",
        "",
        "| skill | train | eval |",
        "|---|---:|---:|",
    ]
    for skill, counts in card["per_skill"].items():
        lines.append(f"| {skill} | {counts['train']} | {counts['eval']} |")
    if card["dropped"]:
        lines += ["", "Routes left out:", ""]
        lines += [f"- {reason}: {n}" for reason, n in card["dropped"].items()]
    return "\n".join(lines) + "\n"
