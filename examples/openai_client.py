"""Point the official OpenAI client at ``paxis serve``: no other code change.

Start the proxy first (keys: ``paxis serve --new-key TEAM``, then put the printed line under
``proxy.keys`` in your policy)::

    paxis serve --policy policies/default.yaml --port 8080
    PAXIS_API_KEY=pxs-... python examples/openai_client.py --base-url http://127.0.0.1:8080/v1

The answer comes from the cheapest tier whose answer passed the checks; the ``x-paxis-*``
headers say which tier, whether it escalated and what it cost.
"""

from __future__ import annotations

import argparse
import os
import sys

import openai


def main(argv: list[str] | None = None) -> str:
    """Ask one question through the proxy; prints and returns the answer line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default=os.environ.get("PAXIS_API_KEY"))
    parser.add_argument("--question", default="What is 17 * 3?")
    args = parser.parse_args(argv)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key)
    raw = client.chat.completions.with_raw_response.create(
        model="paxis/auto", messages=[{"role": "user", "content": args.question}]
    )
    answer = raw.parse().choices[0].message.content
    line = (
        f"{answer!r} from {raw.headers['x-paxis-tier']} "
        f"(escalated: {raw.headers['x-paxis-escalated']}, "
        f"cost: ${raw.headers['x-paxis-cost-usd']})"
    )
    sys.stdout.write(line + "\n")
    # Streaming works the same way; by default the stream is the verified answer.
    stream = client.chat.completions.create(
        model="paxis/auto", messages=[{"role": "user", "content": args.question}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sys.stdout.write(f"streamed: {streamed!r}\n")
    return line


if __name__ == "__main__":
    main()
