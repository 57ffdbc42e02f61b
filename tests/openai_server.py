"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

It listens on 127.0.0.1 only (port 0: the OS picks a free one), in a thread,
and answers ``POST /v1/chat/completions`` from a SCRIPT: one step per request,
in order. A step is a reply text (plain JSON, or SSE chunks when the request
has ``"stream": true``) or a fault: an HTTP error with an OpenAI-style error
body, a delay before answering (longer than the client's timeout), or a
dropped connection. Every request body is recorded (``server.requests``) so a
test can assert what the model saw.

Bounded: use it as a context manager; it also shuts itself down after
``lifetime_s`` seconds if a test forgets, and wakes sleeping handlers on
shutdown. It never opens a connection of its own.

    with OpenAIServer([error(429), error(500), reply("Description: ...")]) as server:
        agent = LiteLLMAgent("openai/test-model", api_base=server.api_base)
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Sequence

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True)
class Step:
    """One scripted answer. ``text``: the reply content (None for a pure fault);
    ``status``: an HTTP error status to answer with instead (``message``/``code`` go
    into the OpenAI-style error body); ``delay_s``: seconds to wait before answering;
    ``drop``: close the connection without a response; ``usage``: (prompt_tokens,
    completion_tokens) to report (default: len(text)//4 style estimates)."""

    text: Optional[str] = None
    status: Optional[int] = None
    message: str = ""
    code: Optional[str] = None
    delay_s: float = 0.0
    drop: bool = False
    usage: Optional[tuple[int, int]] = None


def reply(text: str, usage: Optional[tuple[int, int]] = None, delay_s: float = 0.0) -> Step:
    """A successful reply with content ``text`` (after ``delay_s`` seconds)."""
    return Step(text=text, usage=usage, delay_s=delay_s)


def error(status: int, message: str = "", code: Optional[str] = None) -> Step:
    """An HTTP error ``status`` with an OpenAI-style JSON error body."""
    default_message = {
        401: "Incorrect API key provided: x. You can find your API key at https://example.invalid.",
        404: "The model `test-model` does not exist or you do not have access to it.",
        429: "Rate limit reached for requests. Please try again in 1ms.",
        500: "The server had an error while processing your request.",
        503: "The engine is currently overloaded, please try again later.",
    }.get(status, f"scripted error {status}")
    default_code = _ERROR_TYPES.get(status, (None, None))[1]
    return Step(status=status, message=message or default_message, code=code or default_code)


def slow(delay_s: float, text: str = "late reply") -> Step:
    """A reply that arrives only after ``delay_s`` seconds (longer than the client timeout)."""
    return Step(text=text, delay_s=delay_s)


def drop() -> Step:
    """Read the request, then close the connection without answering."""
    return Step(drop=True)


class OpenAIServer:
    """The scripted server (see module docstring). ``requests``: parsed JSON bodies in
    arrival order; ``headers``: their HTTP headers; ``api_base``: the URL to give litellm.

    When the script runs out, further requests get HTTP 400 "script exhausted"
    (a fatal error for the client, so a test that asks too often fails loudly).
    """

    def __init__(self, script: Sequence[Step], *, lifetime_s: float = 30.0, chunk_chars: int = 7) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.lifetime_s = lifetime_s
        self.chunk_chars = chunk_chars
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._watchdog: Optional[threading.Timer] = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def next_step(self, body: dict, headers: dict[str, str]) -> Optional[Step]:
        """Record the request; return its step (None when the script is exhausted)."""
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.headers.append(headers)
            return self.script[index] if index < len(self.script) else None

    def start(self, port: int = 0) -> "OpenAIServer":
        """Listen on 127.0.0.1:``port`` (0: a free one the OS picks)."""
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._watchdog = threading.Timer(self.lifetime_s, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close the socket (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the server is stopping meanwhile."""
        return self._stopping.wait(seconds)

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer  # set on the per-server subclass
    disable_nagle_algorithm = True  # else ~40 ms per reply (Nagle + delayed ACK)
    protocol_version = "HTTP/1.0"  # one request per connection; a stream ends at close

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(f"no route {self.path}", "invalid_request_error", None))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, _error_body("request body is not JSON", "invalid_request_error", None))
            return
        step = self.owner.next_step(body, {k.lower(): v for k, v in self.headers.items()})
        if step is None:
            self._send_json(400, _error_body("script exhausted: the test asked more often than scripted",
                                             "invalid_request_error", "script_exhausted"))
            return
        if step.delay_s and self.owner.wait(step.delay_s):
            return  # shutting down: answer nothing
        self._answer(step, body)

    def _answer(self, step: Step, body: dict) -> None:
        try:
            if step.drop:
                self.close_connection = True
                return
            if step.status is not None:
                kind = _ERROR_TYPES.get(step.status, ("api_error", None))[0]
                self._send_json(step.status, _error_body(step.message, kind, step.code))
            elif body.get("stream"):
                self._send_stream(step, body)
            else:
                self._send_json(200, _completion(step, body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, step: Step, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        text = step.text or ""
        size = self.owner.chunk_chars
        pieces = [text[i:i + size] for i in range(0, len(text), size)] or [""]
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", "test-model")}
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            self._send_event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._send_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._send_event({**base, "choices": [], "usage": _usage(step, body)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send_event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


def _error_body(message: str, kind: str, code: Optional[str]) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage(step: Step, body: dict) -> dict:
    if step.usage is not None:
        prompt, completion = step.usage
    else:
        prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        completion = max(1, len(step.text or "") // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(step: Step, body: dict) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": step.text or ""},
                     "finish_reason": "stop"}],
        "usage": _usage(step, body),
    }
