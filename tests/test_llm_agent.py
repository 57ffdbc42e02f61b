"""The litellm agent against our own OpenAI-compatible server on 127.0.0.1.

litellm is imported once per process (~3 s, by the first agent call); each call
then takes ~10 ms. Nothing leaves loopback: LITELLM_LOCAL_MODEL_COST_MAP is set
before the import, and a subprocess test records every connection attempt.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cockpit.agents import make_agent
from cockpit.agents.base import Agent, AgentFatal, ProposalContext
from cockpit.row import Row
from cockpit.agents.llm import LiteLLMAgent
from tests.openai_server import OpenAIServer, drop, error, reply, slow

pytestmark = [  # litellm's own pydantic warnings, not ours
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/cockpit-test-model"  # unknown to litellm's cost map
GOOD = ("Description: halve the LR\n\ntrain.py\n```python\n"
        "<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.02\n>>>>>>> REPLACE\n```\n")
CONTEXT = ProposalContext(
    train_py="LR = 0.04  # learning rate\nDEPTH = 4\n", program_md="# PROGRAM-MARKER\nbe bold\n",
    history=(Row("", 1.517, 0.0, "keep", "baseline"), Row("", 1.6, 0.0, "discard", "LR 0.04 -> 0.08")), experiment=2)


@pytest.fixture(autouse=True)
def no_provider_keys(monkeypatch):
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(key, raising=False)


def agent_for(server: OpenAIServer, **options) -> LiteLLMAgent:
    options = {"timeout_s": 5.0, "backoff_s": 0.001, **options}
    return LiteLLMAgent(MODEL, api_base=server.api_base, **options)


def sent_text(request: dict) -> str:
    return "\n".join(m["content"] for m in request["messages"])


async def test_good_reply_returns_text_and_counts_usage():
    with OpenAIServer([reply(GOOD, usage=(321, 45)), reply("second", usage=(10, 2))]) as server:
        agent = agent_for(server)
        assert await agent.propose(CONTEXT) == GOOD
        usage = agent.last_usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.retries) == (321, 45, 0)
        assert usage.cost_usd is None and not usage.estimated and 0 < usage.latency_s < 5
        assert await agent.propose(CONTEXT) == "second"
    assert len(server.requests) == 2
    assert server.requests[0]["model"] == "cockpit-test-model" and not server.requests[0].get("stream")
    assert server.headers[0]["authorization"] == "Bearer sk-no-key"  # placeholder: no key in the env
    totals = agent.totals
    assert (totals.calls, totals.prompt_tokens, totals.completion_tokens, totals.cost_usd) == (2, 331, 47, None)
    assert totals.unpriced_calls == 2
    record = agent.usage_record()
    assert record["model"] == MODEL and record["last"]["prompt_tokens"] == 10 and record["totals"]["calls"] == 2
    json.dumps(record)


async def test_streaming_assembles_the_chunks():
    with OpenAIServer([reply(GOOD, usage=(200, 30))], chunk_chars=5) as server:
        agent = agent_for(server, stream=True)
        assert await agent.propose(CONTEXT) == GOOD
    assert server.requests[0]["stream"] is True
    assert (agent.last_usage.prompt_tokens, agent.last_usage.completion_tokens) == (200, 30)


async def test_rate_limit_then_server_error_then_success():
    with OpenAIServer([error(429), error(500), reply(GOOD)]) as server:
        agent = agent_for(server, max_retries=3)
        assert await agent.propose(CONTEXT) == GOOD
    assert len(server.requests) == 3
    assert agent.last_usage.retries == 2 and agent.totals.retries == 2
    assert server.requests[0] == server.requests[2]  # the same prompt each time


async def test_dropped_connection_is_retried():
    with OpenAIServer([drop(), reply(GOOD)]) as server:
        agent = agent_for(server)
        assert await agent.propose(CONTEXT) == GOOD
    assert len(server.requests) == 2 and agent.last_usage.retries == 1


async def test_slow_reply_is_retried_then_fatal_when_it_persists():
    with OpenAIServer([slow(2.0), reply(GOOD)]) as server:
        agent = agent_for(server, timeout_s=0.15)
        assert await agent.propose(CONTEXT) == GOOD
    assert len(server.requests) == 2
    with OpenAIServer([slow(2.0)] * 3) as server:
        agent = agent_for(server, timeout_s=0.15, max_retries=1)
        with pytest.raises(AgentFatal, match="gave up after 2 attempts") as caught:
            await agent.propose(CONTEXT)
    assert len(server.requests) == 2
    message = str(caught.value)
    assert "\n" not in message and MODEL in message and "Timeout" in message and "timeout" in message
    assert agent.last_usage is None and agent.totals.failed_calls == 1
    assert message.count("then resume") == 1


async def test_missing_provider_key_is_fatal_before_any_request(monkeypatch):
    def no_lookups(*args, **kwargs):
        raise AssertionError(f"network lookup attempted: {args[:1]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookups)
    agent = LiteLLMAgent("openai/gpt-4o-mini", max_retries=3)
    with pytest.raises(AgentFatal, match="OPENAI_API_KEY is not set in the environment"):
        await agent.propose(CONTEXT)


async def test_bad_key_is_fatal_at_once_with_one_request():
    with OpenAIServer([error(401)] * 3) as server:
        agent = agent_for(server, max_retries=3)
        with pytest.raises(AgentFatal) as caught:
            await agent.propose(CONTEXT)
    assert len(server.requests) == 1
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{MODEL}: AuthenticationError (401)")
    assert "openai" in message and server.api_base in message and "API key" in message


async def test_unknown_model_is_fatal_at_once():
    with OpenAIServer([error(404)] * 3) as server:
        agent = agent_for(server)
        with pytest.raises(AgentFatal, match="NotFoundError .*model name") :
            await agent.propose(CONTEXT)
    assert len(server.requests) == 1


async def test_the_prompt_holds_everything_the_model_needs():
    context = ProposalContext(
        train_py=CONTEXT.train_py, program_md=CONTEXT.program_md, history=CONTEXT.history, experiment=3,
        kept_diffs=("--- a/train.py\n+++ b/train.py\n-DEPTH = 3\n+DEPTH = 4",),
        crash_log_tail="Traceback (most recent call last)\nRuntimeError: CUDA out of memory", fix_attempt=1,
        steering=("prefer architecture changes", "no batch size changes"),
        last_error="The SEARCH text was not found in train.py", attempt=1)
    with OpenAIServer([reply(GOOD)]) as server:
        await agent_for(server).propose(context)
    system, user = server.requests[0]["messages"]
    assert system["role"] == "system" and "# PROGRAM-MARKER" in system["content"] and "SEARCH" in system["content"]
    assert "LR = 0.04  # learning rate" in user["content"]
    assert "#0 keep 1.517000 baseline" in user["content"] and "#1 discard 1.600000 LR 0.04 -> 0.08" in user["content"]
    assert "+DEPTH = 4" in user["content"]
    assert "Fix this crash of the same idea" in user["content"] and "CUDA out of memory" in user["content"]
    assert "- prefer architecture changes" in user["content"] and "- no batch size changes" in user["content"]
    assert "The SEARCH text was not found in train.py" in user["content"]


async def test_context_window_error_shrinks_the_prompt_and_asks_again():
    history = tuple(Row("", 1.6, 0.0, "discard", f"idea {i} " + "words " * 10) for i in range(300))
    context = ProposalContext(train_py=CONTEXT.train_py, program_md=CONTEXT.program_md, history=history)
    too_long = error(400, "This model's maximum context length is 1000 tokens. However, your messages "
                          "resulted in 9000 tokens.", "context_length_exceeded")
    with OpenAIServer([too_long, reply(GOOD)]) as server:
        agent = agent_for(server)
        assert await agent.propose(context) == GOOD
    first, second = (sent_text(r) for r in server.requests)
    assert len(second) < len(first) and "oldest rows omitted" in second and "idea 299 " in second
    assert agent.last_usage.retries == 1


async def test_prompt_trimmed_to_the_given_window():
    history = tuple(Row("", 1.6, 0.0, "discard", f"idea {i} " + "words " * 10) for i in range(300))
    context = ProposalContext(train_py=CONTEXT.train_py, program_md=CONTEXT.program_md, history=history)
    with OpenAIServer([reply(GOOD)]) as server:
        await agent_for(server, max_input_tokens=3000).propose(context)
    assert "oldest rows omitted" in sent_text(server.requests[0])
    with OpenAIServer([]) as server:
        with pytest.raises(AgentFatal, match="larger context window"):
            await agent_for(server, max_input_tokens=40).propose(context)
    assert server.requests == []


async def test_cost_is_priced_for_a_known_model_and_none_for_an_unknown_one():
    with OpenAIServer([reply(GOOD, usage=(1000, 100))]) as server:
        agent = LiteLLMAgent("openai/gpt-4o-mini", api_base=server.api_base, timeout_s=5.0)
        await agent.propose(CONTEXT)
    assert agent.last_usage.cost_usd is not None and 0 < agent.last_usage.cost_usd < 0.01
    assert agent.totals.cost_usd == agent.last_usage.cost_usd


async def test_connections_stay_on_loopback(monkeypatch):
    targets = []
    real_connect = socket.socket.connect

    def recording_connect(self, address):
        targets.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    with OpenAIServer([reply(GOOD)]) as server:
        await agent_for(server, stream=True).propose(CONTEXT)
    assert targets and all(address[0] in ("127.0.0.1", "::1") for address in targets), targets
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_import_is_lazy_and_the_litellm_import_goes_nowhere():
    """In a fresh interpreter: importing and building the agent does not import litellm;
    from before litellm's import to a finished call, every connect and DNS lookup is local."""
    script = textwrap.dedent("""
        import asyncio, json, socket, sys
        import cockpit.agents.llm, cockpit.agents.prompt, cockpit.agents.llm_errors
        from cockpit.agents import make_agent
        agent = make_agent("litellm", model="openai/cockpit-test-model", api_base="http://127.0.0.1:1/v1")
        lazy = "litellm" not in sys.modules
        seen = []
        real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo
        def connect(self, address):
            seen.append(str(address[0]))
            return real_connect(self, address)
        def lookup(host, *args, **kwargs):
            seen.append(str(host))
            return real_lookup(host, *args, **kwargs)
        socket.socket.connect, socket.getaddrinfo = connect, lookup
        from tests.openai_server import OpenAIServer, reply
        from cockpit.agents.base import ProposalContext
        with OpenAIServer([reply("Description: x")]) as server:
            agent.api_base = server.api_base
            text = asyncio.run(agent.propose(ProposalContext(train_py="A = 1\\n", program_md="p")))
        print(json.dumps({"lazy": lazy, "text": text, "seen": seen, "loaded": "litellm" in sys.modules}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_LOCAL_MODEL_COST_MAP", "OPENAI_API_KEY")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lazy"] is True and result["loaded"] is True and result["text"] == "Description: x"
    assert result["seen"] and set(result["seen"]) <= {"127.0.0.1", "localhost", "::1"}, result["seen"]


def test_make_agent_passes_options_through():
    agent = make_agent("litellm", model=MODEL, api_base="http://127.0.0.1:9/v1", timeout_s=7.5, max_retries=1,
                       stream=True, temperature=None)
    assert isinstance(agent, LiteLLMAgent) and isinstance(agent, Agent) and agent.name == MODEL
    assert (agent.api_base, agent.timeout_s, agent.max_retries, agent.stream, agent.temperature) == \
        ("http://127.0.0.1:9/v1", 7.5, 1, True, None)
    with pytest.raises(ValueError, match="needs a model"):
        make_agent("litellm")
    with pytest.raises(ValueError, match="bad option"):
        make_agent("litellm", model=MODEL, colour="red")
    with pytest.raises(ValueError, match="takes no options"):
        make_agent("offline", model=MODEL)
    assert make_agent("offline", model=None).name == "offline"
