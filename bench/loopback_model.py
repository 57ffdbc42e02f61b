"""A slow loopback "model" for the benches: an OpenAI chat-completions server on
127.0.0.1 that thinks ``delay_s`` seconds and answers with a valid edit.

It reads the train.py the prompt shows (cockpit.agents.prompt's "## Current train.py"
section), the history rows and the runs in flight, and answers with the
offline agent's next untried hyper-parameter move (cockpit.agents.offline) in
the SEARCH/REPLACE format: a real reply through litellm's real HTTP path, with
usage figures, at the speed of a thinking model. Non-streaming only (the bench
sets ``stream = false``). Used as a context manager::

    with LoopbackModel(delay_s=30, spread=True) as model:
        ...  # api_base = model.api_base
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from cockpit.row import Row
from cockpit.agents.offline import plan_moves, render_reply

AGENT = """[agent]
name = "litellm"
model = "openai/bench-model"
api_base = "{api_base}"
stream = false
timeout_s = 300
"""  # the cockpit.toml [agent] table of a bench session on this model (format with api_base)

_TRAIN_PY = re.compile(r"## Current train\.py\n```python\n(.*?)\n```", re.S)
_HISTORY = re.compile(r"^#\d+ (keep|discard|crash) \S+ (.*)$", re.M)
_SECTION = re.compile(r"## (Training right now|Proposals the human vetoed)[^\n]*\n((?:- .*\n?)*)")


def answer(prompt: str, seed: int = 0, pick: Optional[random.Random] = None) -> str:
    """The reply for a user prompt: the first untried move on the train.py shown
    (history, vetoed and in-flight descriptions count as tried), or with ``pick`` one
    of them at random (as a model sampled at a temperature would: N asks at once then
    seldom collide). Raises ValueError when the prompt shows no train.py or no move is left."""
    found = _TRAIN_PY.search(prompt)
    if not found:
        raise ValueError("no train.py in the prompt")
    history = [Row("", 0.0, 0.0, status, text) for status, text in _HISTORY.findall(prompt)]
    for _, body in _SECTION.findall(prompt):
        history += [Row("", 0.0, 0.0, "running", line[2:]) for line in body.splitlines() if line.startswith("- ")]
    moves = plan_moves(found.group(1) + "\n", history, seed)
    if not moves:
        raise ValueError("no untried move left")
    return render_reply(pick.choice(moves) if pick is not None else moves[0])


class LoopbackModel:
    """The server (see module docstring); ``calls`` counts answered requests."""

    def __init__(self, delay_s: float = 30.0, spread: bool = False) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self.pick = random.Random(0) if spread else None  # spread: a random untried move per answer
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "LoopbackModel":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        model = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = "\n".join(m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user")
                time.sleep(model.delay_s)
                try:
                    with lock:
                        text, status = answer(prompt, pick=model.pick), 200
                except ValueError as exc:
                    text, status = f"I have nothing to propose: {exc}", 200
                model.calls += 1
                payload = {
                    "id": f"bench-{model.calls}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "bench"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4,
                              "total_tokens": (len(prompt) + len(text)) // 4},
                }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
