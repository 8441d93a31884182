"""Run an OpenAI Agents SDK agent with a function tool through ``paxis serve``.

Every model call of the agent is one route: the cheap worker first, its tool calls checked
(an offered tool, arguments that fit its schema) and escalated when they are wrong, every
attempt in the ledger under the key's team. Start the proxy first (keys: ``paxis serve
--new-key TEAM``, then put the printed line under ``proxy.keys`` in your policy)::

    pip install 'paxis-router[proxy]' openai-agents
    paxis serve --policy policy.yaml --port 8080
    PAXIS_API_KEY=pxs-... python examples/openai_agents.py --base-url http://127.0.0.1:8080/v1

The SDK reads a model name ``x/y`` as "provider x, model y", so the agent gets the route as
``OpenAIChatCompletionsModel(model="paxis/auto", openai_client=...)``, which sends the name as
it is (``model="paxis-auto"``, the route's dash alias, works as a plain string too). Tracing is
turned off: the SDK would otherwise send traces to OpenAI. Without a key, or with no server
listening, it says so and exits 1 (no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

try:
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
except ImportError:  # pragma: no cover - depends on the install
    sys.exit("openai_agents.py needs the OpenAI Agents SDK: pip install openai-agents")


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return json.dumps({"city": city, "temp_c": 12})


async def ask(base_url: str, api_key: str, question: str) -> str:
    """Run the agent once; returns its final answer."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer weather questions; call get_weather for the facts.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model="paxis/auto", openai_client=client),
    )
    try:
        result = await Runner.run(agent, question, run_config=RunConfig(tracing_disabled=True))
    finally:
        await client.close()
    return str(result.final_output)


def main(argv: list[str] | None = None) -> str:
    """Ask the agent one question through the proxy; prints and returns its answer."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8080/v1", help="the proxy's /v1 URL"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PAXIS_API_KEY"),
        help="a key of the proxy (default: $PAXIS_API_KEY)",
    )
    parser.add_argument("--question", default="What's the weather in Paris?", help="what to ask")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(
            "no API key: pass --api-key or set PAXIS_API_KEY (make one with "
            "`paxis serve --new-key TEAM` and put its line under proxy.keys)"
        )
    answer = asyncio.run(ask(args.base_url, args.api_key, args.question))
    sys.stdout.write(f"{answer}\n")
    return answer


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
