"""A fake LLM server for tests and benchmarks: a real HTTP server on a free loopback port, in a thread.

It speaks OpenAI's `POST /v1/chat/completions` (plain JSON, or `stream: true` as SSE `data: {...}` chunks
with `choices[0].delta.content`, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`) and
Anthropic's `POST /v1/messages` (with `stream: true`: `message_start`, `content_block_delta`… events).

    with FakeLLMServer(["```python\\nawait Return(1)\\n```"]) as server:
        ...  # [llm] provider = "openai", base_url = server.base_url, OPENAI_API_KEY=test
        assert len(server.requests) == 1

Answers are deterministic, like a model at temperature 0: a request whose conversation (model and messages)
was seen before gets the same answer again; a new conversation takes the next scripted answer (or, with
`responder`, whatever it returns for the body). So a client that asks the same question twice (a resume
re-requesting an interrupted call) is answered the same, and `requests` shows that it asked twice.

Faults, each for the next requests that reach the server: `fail(status, times)` answers with an error
status (429 with `Retry-After: 0` by default); `drop_after(chars)` streams that many characters of content,
then closes the connection without finishing the response; `error_event(kind, after_chars)` ends the stream
with an error event instead. `delay_s` waits before the first byte.
`busy_s` is the time the server spent answering (from its request line read to the last byte written), so
a benchmark can subtract it.

Run as a script, it serves in its own process (so a benchmark's client does not share its interpreter):
`python tests/llm_fake_server.py ANSWER` prints the port, answers every request with ANSWER, and reports
`{"requests": N, "busy_s": S}` at `GET /_fake/stats`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]


@dataclass
class Fault:
    kind: str  # "status" | "drop" | "event"
    status: int = 0
    body: dict[str, Any] | None = None
    retry_after: str | None = None
    chars: int = 0


class FakeLLMServer:
    def __init__(self, answers: list[str] | None = None, *, responder: Responder | None = None,
                 delay_s: float = 0.0, chunk_chars: int = 7, model: str = "fake-model") -> None:
        self.answers = list(answers or [])
        self.responder = responder
        self.delay_s = delay_s
        self.chunk_chars = chunk_chars
        self.model = model
        self.requests: list[dict[str, Any]] = []  # every body received, in order (faulted ones too)
        self.headers: list[dict[str, str]] = []
        self.busy_s = 0.0
        self._faults: list[Fault] = []
        self._seen: dict[str, str] = {}  # conversation -> its answer
        self._next = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *answers: str) -> None:
        with self._lock:
            self.answers.extend(answers)

    def fail(self, status: int = 429, *, times: int = 1, body: dict[str, Any] | None = None,
             retry_after: str | None = "0") -> None:
        with self._lock:
            self._faults.extend(Fault("status", status=status, body=body, retry_after=retry_after)
                                for _ in range(times))

    def drop_after(self, chars: int, *, times: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault("drop", chars=chars) for _ in range(times))

    def error_event(self, kind: str = "overloaded_error", *, after_chars: int = 0, times: int = 1) -> None:
        """Stream `after_chars` characters, then an error event (Anthropic's `event: error`, or a `data:` chunk
        with an `error` object for OpenAI) and end the stream."""
        with self._lock:
            self._faults.extend(Fault("event", chars=after_chars, body={"type": kind}) for _ in range(times))

    def conversations(self) -> list[str]:
        """Each request's conversation key, in order: count them to see which ones were asked twice."""
        return [_conversation(body) for body in self.requests]

    def start(self) -> FakeLLMServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering (called from the handler's thread) --------------------------------------------------

    def _take(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Fault | None, str]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            fault = self._faults.pop(0) if self._faults else None
            if fault is not None and fault.kind == "status":
                return fault, ""
            key = _conversation(body)
            if key not in self._seen:
                if self.responder is not None:
                    self._seen[key] = self.responder(body)
                elif self._next < len(self.answers):
                    self._seen[key] = self.answers[self._next]
                    self._next += 1
                else:
                    return Fault("status", status=500, body={"error": {
                        "message": f"fake server: no scripted answer left for request #{len(self.requests)}",
                        "type": "server_error"}}), ""
            return fault, self._seen[key]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a killed `playbooks` process, a closed keep-alive connection) is normal here.
        pass


def _conversation(body: dict[str, Any]) -> str:
    return json.dumps([body.get("model"), body.get("system"), body.get("messages")], sort_keys=True)


def _tokens(body: dict[str, Any]) -> int:
    text = json.dumps(body.get("messages", [])) + json.dumps(body.get("system", ""))
    return max(1, len(text) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLMServer

    def setup(self) -> None:
        super().setup()
        # Many small writes per answer: without this, Nagle's algorithm and the client's delayed ACK add
        # ~40 ms to every streamed response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def parse_request(self) -> bool:
        self._started = time.perf_counter()  # the request line has just been read: the server's work begins
        return super().parse_request()

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":  # for a server in another process (python tests/llm_fake_server.py)
            with self.fake._lock:
                self._json(200, {"requests": len(self.fake.requests), "busy_s": self.fake.busy_s})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(json.loads(self.rfile.read(length) or b"{}"))
        finally:
            with self.fake._lock:
                self.fake.busy_s += time.perf_counter() - self._started

    def _answer(self, body: dict[str, Any]) -> None:
        path = self.path.split("?")[0]
        if path not in ("/v1/chat/completions", "/v1/messages"):
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        anthropic = path == "/v1/messages"
        fault, text = self.fake._take(body, {k.lower(): v for k, v in self.headers.items()})
        if self.fake.delay_s:
            time.sleep(self.fake.delay_s)
        if fault is not None and fault.kind == "status":
            self._error(fault, anthropic)
            return
        cut = fault.chars if fault is not None else None
        if not body.get("stream"):
            self._json(200, _anthropic_message(body, text, self.fake.model) if anthropic
                       else _openai_completion(body, text, self.fake.model))
            return
        events = _anthropic_events(body, text, self.fake.model, self.fake.chunk_chars) if anthropic \
            else _openai_events(body, text, self.fake.model, self.fake.chunk_chars)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        for event, content in events:
            if fault is not None and cut is not None and sent + len(content) > cut:
                if fault.kind == "event":
                    self._chunk(_error_event(fault, anthropic).encode())
                    break
                data = event.encode()  # half a chunk, then the connection goes away
                self.wfile.write(f"{len(data):x}\r\n".encode() + data[: len(data) // 2])
                self._abort()
                return
            self._chunk(event.encode())
            sent += len(content)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _abort(self) -> None:
        """Close the connection in the middle of the chunked body: the client sees a broken stream."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, fault: Fault, anthropic: bool) -> None:
        kind = {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error"}.get(
            fault.status, "api_error")
        default = {"type": "error", "error": {"type": kind, "message": f"fake server: status {fault.status}"}} \
            if anthropic else {"error": {"message": f"fake server: status {fault.status}", "type": kind}}
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        self._json(fault.status, fault.body or default, headers)


def _error_event(fault: Fault, anthropic: bool) -> str:
    kind = (fault.body or {}).get("type", "overloaded_error")
    error = {"type": kind, "message": f"fake server: {kind}"}
    return _sse({"type": "error", "error": error}, "error") if anthropic else _sse({"error": error})


def _sse(payload: dict[str, Any] | str, event: str | None = None) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or []


def _openai_completion(body: dict[str, Any], text: str, model: str) -> dict[str, Any]:
    prompt = _tokens(body)
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": prompt + max(1, len(text) // 4)}}


def _openai_events(body: dict[str, Any], text: str, model: str, size: int) -> list[tuple[str, str]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model") or model}
    events = [(_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]}), "")]
    for piece in _pieces(text, size):
        events.append((_sse({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                  "finish_reason": None}]}), piece))
    events.append((_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), ""))
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt = _tokens(body)
        events.append((_sse({**base, "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": max(1, len(text) // 4),
            "total_tokens": prompt + max(1, len(text) // 4)}}), ""))
    events.append((_sse("[DONE]"), ""))
    return events


def _anthropic_message(body: dict[str, Any], text: str, model: str) -> dict[str, Any]:
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model") or model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": _tokens(body), "output_tokens": max(1, len(text) // 4)}}


def _anthropic_events(body: dict[str, Any], text: str, model: str, size: int) -> list[tuple[str, str]]:
    message = {**_anthropic_message(body, "", model), "content": [], "stop_reason": None,
               "usage": {"input_tokens": _tokens(body), "output_tokens": 1}}
    events = [(_sse({"type": "message_start", "message": message}, "message_start"), ""),
              (_sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    "content_block_start"), ""),
              (_sse({"type": "ping"}, "ping"), "")]
    for piece in _pieces(text, size):
        events.append((_sse({"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": piece}}, "content_block_delta"), piece))
    events += [(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), ""),
               (_sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                      "usage": {"output_tokens": max(1, len(text) // 4)}}, "message_delta"), ""),
               (_sse({"type": "message_stop"}, "message_stop"), "")]
    return events


def main(argv: list[str]) -> None:
    answer = argv[1] if len(argv) > 1 else "```python\nawait Return(None)\n```"
    with FakeLLMServer(responder=lambda body: answer, chunk_chars=16) as server:
        print(server.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)


if __name__ == "__main__":
    main(sys.argv)
