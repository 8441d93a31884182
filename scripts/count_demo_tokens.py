"""Count the tokens of the demo's GSM8K texts once, with tiktoken's cl100k_base (GPT-4's).

Writes ``paxis_router/data/routellm/gsm8k_tokens.csv``: for each row of
``gsm8k_responses.csv`` (``row`` = its 0-based position, the replay id), the token count of the
prompt and of each model's response. ``paxis demo`` prices the replayed answers from these
recorded counts, so its figures are the same whether or not tiktoken (bundled with litellm, the
``[litellm]`` extra) is installed. Needs litellm installed; run it when the data file changes.

    python scripts/count_demo_tokens.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from paxis_router.workers.replay import count_tokens, token_counter_name

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "paxis_router" / "data" / "routellm"


def main() -> int:
    if token_counter_name() != "tiktoken:cl100k_base":
        sys.exit("tiktoken's cl100k_base is not available: pip install 'paxis-router[litellm]'")
    with (DATA / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        texts = ["prompt", *(c for c in reader.fieldnames or [] if c.endswith("_response"))]
        rows = [
            [str(i), *(str(count_tokens(row[c])) for c in texts)] for i, row in enumerate(reader)
        ]
    out = DATA / "gsm8k_tokens.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["row", *texts])
        writer.writerows(rows)
    print(f"wrote token counts of {len(rows)} rows ({', '.join(texts)}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
