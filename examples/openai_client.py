"""Point the official OpenAI client at ``paxis serve``: no other code change.

Start the proxy first (keys: ``paxis serve --new-key TEAM``, then put the printed line under
``proxy.keys`` in your policy)::

    paxis serve --policy policy.yaml --port 8080
    PAXIS_API_KEY=pxs-... python examples/openai_client.py --base-url http://127.0.0.1:8080/v1

Without a key, or with no server listening, it says so and exits 1 (no traceback).

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
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8080/v1", help="the proxy's /v1 URL"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PAXIS_API_KEY"),
        help="a key of the proxy (default: $PAXIS_API_KEY)",
    )
    parser.add_argument("--question", default="What is 17 * 3?", help="what to ask")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(
            "no API key: pass --api-key or set PAXIS_API_KEY (make one with "
            "`paxis serve --new-key TEAM` and put its line under proxy.keys)"
        )
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


def run(argv: list[str] | None = None) -> int:
    """``main`` for the command line: a missing server or a refused key is a message, exit 1."""
    try:
        main(argv)
    except openai.APIConnectionError as exc:
        sys.stderr.write(
            f"cannot reach paxis serve at {exc.request.url}: start it first "
            "(paxis serve --policy policy.yaml --port 8080) or pass --base-url\n"
        )
        return 1
    except openai.AuthenticationError:
        sys.stderr.write("paxis serve refused the API key (401): check --api-key/PAXIS_API_KEY\n")
        return 1
    except openai.APIStatusError as exc:
        sys.stderr.write(f"paxis serve answered {exc.status_code}: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
