"""Refresh the price map paxis_router ships (``paxis_router/data/prices/model_prices.json``).

The map is a snapshot of litellm's ``model_prices_and_context_window.json`` (MIT; see
``paxis_router/data/prices/SOURCE.md``), trimmed to the models priced per token (modes chat,
completion, responses) and to the fields ``paxis_router.pricing`` reads. By default it is taken
from the litellm installed in this environment (``pip install 'paxis-router[litellm]'``), whose
version is recorded so that ``pricing`` can tell which of the two maps is newer.

    python scripts/refresh_prices.py                 # from the installed litellm
    python scripts/refresh_prices.py --from FILE --litellm-version 1.110.2

Run it with ``make prices``; review the diff (one model per line) before committing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "paxis_router" / "data" / "prices" / "model_prices.json"
MODES = frozenset({"chat", "completion", "responses"})
# The fields paxis_router.pricing reads; everything else in litellm's map is left out.
PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "output_cost_per_reasoning_token",
)
# One row per model: these columns, in this order (null where litellm's map has no value).
COLUMNS = (*PRICE_FIELDS, "max_input_tokens")


def installed_map() -> tuple[Path, str]:
    """The map file inside the installed litellm and litellm's version."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("litellm is not installed: pip install 'paxis-router[litellm]', or pass --from")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model_prices_and_context_window_backup.json"
        if candidate.is_file():
            return candidate, importlib.metadata.version("litellm")
    sys.exit("the installed litellm has no model_prices_and_context_window_backup.json")


def _price(value: object) -> str | None:
    return str(Decimal(value)) if isinstance(value, Decimal | int) else None


def trim(raw: dict[str, object]) -> dict[str, list[str | int | None]]:
    """The per-token models of litellm's map as rows of COLUMNS (prices as exact text)."""
    models: dict[str, list[str | int | None]] = {}
    for name, entry in sorted(raw.items()):
        if not isinstance(entry, dict) or entry.get("mode") not in MODES:
            continue
        row: list[str | int | None] = [_price(entry.get(k)) for k in PRICE_FIELDS]
        if row[0] is None or row[1] is None:
            continue
        window = entry.get("max_input_tokens")
        row.append(int(window) if isinstance(window, Decimal | int) else None)
        models[name] = row
    return models


def render(models: dict[str, list[str | int | None]], meta: dict[str, object]) -> str:
    """The map as JSON with one model per line (reviewable diffs)."""
    lines = ["{", f'"meta": {json.dumps(meta, sort_keys=True)},', '"models": {']
    items = [f"{json.dumps(name)}: {json.dumps(row)}" for name, row in models.items()]
    lines.append(",\n".join(items))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a litellm map file to read")
    parser.add_argument("--litellm-version", help="the litellm version that file comes from")
    parser.add_argument("-o", "--output", type=Path, default=TARGET, help=f"default: {TARGET}")
    args = parser.parse_args()
    if args.source is not None:
        if not args.litellm_version:
            parser.error("--from needs --litellm-version (the version the file comes from)")
        path, version = args.source, args.litellm_version
    else:
        path, version = installed_map()
    raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    models = trim(raw)
    meta: dict[str, object] = {
        "source": "litellm model_prices_and_context_window.json (MIT, BerriAI/litellm)",
        "litellm_version": version,
        "taken": datetime.now(UTC).date().isoformat(),
        "columns": list(COLUMNS),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(models, meta), encoding="utf-8")
    print(f"wrote {len(models)} models from litellm {version} to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
