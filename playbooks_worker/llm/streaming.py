"""What the network providers share: one pooled HTTP client, a streamed answer handed over in order, retries
only while they are safe, and error messages that say what to fix and never show the key.

The interpreter executes statements inside `on_text`, so:

- A request is retried (429, 5xx, overloaded, connection errors and timeouts; a bounded number of attempts,
  with exponential backoff or the server's Retry-After) only while no text has been handed over. After that a
  retry would run the first statements a second time: a stream that breaks off raises LLMError instead, and
  the call, which has no record yet, is asked again when the run is resumed.
- The answer is read by its own task into a queue, apart from the statements that run on it. A statement that
  takes its time (a slow tool, `Yield("user")` at a terminal) does not leave the connection unread until the
  server gives up on it, and the latency recorded is the network's, not the statements'.

Plain httpx rather than the official SDKs: measured here, importing `openai` took 0.6–1.6 s and `anthropic`
1.9–3.2 s, and the SDKs' per-chunk models made a short streamed call cost 2–3x the CPU of parsing the stream
directly, against a 2 ms per call overhead goal (bench/llm_overhead.py); we need one endpoint of each API,
and the SDKs' own retries would have had to be off anyway (only we know when a retry is safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playbooks_worker.config import redact_url
from playbooks_worker.llm.provider import LLMError, LLMRequest, LLMResponse, OnText

if TYPE_CHECKING:
    import httpx


@dataclass
class Answer:
    """What a provider's stream learns besides the text, as it goes."""

    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def usage(self) -> dict[str, int]:
        pairs = (("prompt_tokens", self.prompt_tokens), ("completion_tokens", self.completion_tokens))
        return {name: value for name, value in pairs if value is not None}


@dataclass(frozen=True)
class Failure:
    """An exception read for the user: what went wrong, the fix, and whether asking again may help."""

    message: str
    hint: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None  # the server's Retry-After, when it sent one


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4  # in all, the first one included
    base_delay_s: float = 0.5  # doubled after each failed attempt, plus up to 25% jitter
    max_delay_s: float = 8.0

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        delay = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return delay * (1 + random.random() / 4)


class ServerError(Exception):
    """An error status, or an error event inside a stream."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "",
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.retry_after_s = retry_after_s


class BrokenStream(Exception):
    """The body ended before the stream's end marker: the connection was cut."""


RETRYABLE_KINDS = ("overloaded_error", "api_error", "rate_limit_error", "server_error", "timeout")


class HTTPProvider:
    """An LLM API over HTTP: subclasses say how to ask (`build`) and how to read the answer (`read_*`)."""

    name = ""
    label = ""  # "OpenAI-compatible server"
    key_variable = ""  # the environment variable the key comes from

    def __init__(self, *, model: str, api_key: str, base_url: str, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._key = api_key
        self._client: httpx.AsyncClient | None = None
        self._where = f"{self.label} {redact_url(self.base_url)}"  # errors name the server, never its password

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(model={self.model!r}, base_url={redact_url(self.base_url)!r})"

    # -- what a subclass provides ----------------------------------------------------------------------

    def build(self, request: LLMRequest, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        """URL, headers and JSON body of one request."""
        raise NotImplementedError

    def read_events(self, events: AsyncIterator[tuple[str, str]], answer: Answer) -> AsyncIterator[str]:
        """The text pieces of a streamed answer, from its SSE (event, data) pairs; raises BrokenStream when the
        stream ends before its end marker and ServerError for an error event."""
        raise NotImplementedError

    def read_whole(self, body: dict[str, Any], answer: Answer) -> str:
        raise NotImplementedError

    # -- the call --------------------------------------------------------------------------------------

    async def complete(self, request: LLMRequest, on_text: OnText | None = None) -> LLMResponse:
        """Stream the answer into `on_text`; without `on_text`, one plain (not streamed) request."""
        stream = on_text is not None
        return await stream_with_retries(lambda answer: self._attempt(request, answer, stream), on_text,
                                         provider=self._where, policy=self.retry,
                                         explain=lambda exc: self.explain(exc, request))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), verify=_ssl_context())
        return self._client

    async def _attempt(self, request: LLMRequest, answer: Answer, stream: bool) -> AsyncIterator[str]:
        url, headers, body = self.build(request, stream)
        async with self._http().stream("POST", url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                raise _status_error(response.status_code, await response.aread(), response.headers)
            if not stream:
                text = self.read_whole(json.loads(await response.aread()), answer)
                if text:
                    yield text
                return
            async for text in self.read_events(_sse(response.aiter_lines()), answer):
                yield text

    # -- errors ----------------------------------------------------------------------------------------

    def explain(self, exc: BaseException, request: LLMRequest) -> Failure:
        import httpx

        where = redact_url(self.base_url)
        if isinstance(exc, httpx.TimeoutException):
            return Failure(f"no answer within {self.timeout_s:g} s ({type(exc).__name__})", retryable=True,
                           hint="raise [llm] timeout_s, or check that the server is not overloaded")
        if isinstance(exc, (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.ProxyError)):
            return Failure(f"cannot reach {where}: {self.scrub(str(exc) or type(exc).__name__)}",
                           retryable=not isinstance(exc, httpx.UnsupportedProtocol),
                           hint="check [llm] base_url and that the server is running")
        if isinstance(exc, (httpx.TransportError, BrokenStream)):
            return Failure(f"the connection broke: {self.scrub(str(exc) or type(exc).__name__)}", retryable=True,
                           hint="check the network and the server")
        if isinstance(exc, ServerError):
            detail = self.scrub(str(exc))
            status = exc.status
            if status in (401, 403):
                return Failure(f"the server refused the API key (HTTP {status})",
                               hint=f"check {self.key_variable} (it is read from the environment)")
            if status == 404:
                return Failure(f"HTTP 404 for model {request.model or self.model!r}: {detail}",
                               hint="check [llm] model and [llm] base_url")
            if status is None:
                return Failure(f"the server answered with an error: {detail}", retryable=exc.kind in
                               RETRYABLE_KINDS or "overloaded" in detail.lower(), hint="try again later")
            retryable = status in (408, 409, 429) or status >= 500
            hint = ("the server is rate limiting: wait, or raise your quota" if status == 429 else
                    "the server had a problem; try again later" if retryable else
                    "check [llm] model and the request the server refused")
            return Failure(f"HTTP {status}: {detail}", hint=hint, retryable=retryable,
                           retry_after_s=exc.retry_after_s)
        if isinstance(exc, ValueError):  # json.JSONDecodeError, a body of the wrong shape
            return Failure(f"the server's answer could not be read: {self.scrub(str(exc))}",
                           hint="check that [llm] base_url points at the right kind of server")
        return Failure(f"{type(exc).__name__}: {self.scrub(str(exc))}")

    def scrub(self, text: str, limit: int = 300) -> str:
        """A server's message made safe to show: the key (and anything key-shaped) removed, and kept short."""
        if self._key:
            text = text.replace(self._key, "***")
        text = " ".join(_SECRET_LIKE.sub(r"\1***", text).split())
        return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~40 ms; a worker makes a client per run, so load it once per process.
    import httpx

    return httpx.create_ssl_context()


_SECRET_LIKE = re.compile(r"\b(sk-(?:ant-)?)[\w\-*.]{6,}")


def _status_error(status: int, raw: bytes, headers: Mapping[str, str]) -> ServerError:
    message, kind = raw.decode("utf-8", "replace").strip(), ""
    with contextlib.suppress(ValueError):
        body = json.loads(raw)
        error = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            kind = str(error.get("type") or "")
        elif isinstance(error, str):
            message = error
    return ServerError(message or f"HTTP {status}", status=status, kind=kind, retry_after_s=_retry_after_s(headers))


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) * scale
            except ValueError:
                return None  # an HTTP date: use our own backoff
    return None


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as (event name, data) pairs; comments and keep-alives skipped."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, "\n".join(data)


# -- streaming and retrying -----------------------------------------------------------------------------

OpenStream = Callable[[Answer], AsyncIterator[str]]  # one attempt: yields text pieces, fills in the Answer


@dataclass
class _End:
    latency_s: float


async def stream_with_retries(
    open_stream: OpenStream,
    on_text: OnText | None,
    *,
    provider: str,
    policy: RetryPolicy,
    explain: Callable[[BaseException], Failure],
) -> LLMResponse:
    """Run attempts of `open_stream` until one completes; see the module docstring for when it retries."""
    for attempt in range(1, policy.attempts + 1):
        answer = Answer()
        queue: asyncio.Queue[str | _End | Exception] = asyncio.Queue()
        reader = asyncio.ensure_future(_read(open_stream(answer), queue))
        parts: list[str] = []
        try:
            while True:
                item = await queue.get()
                if not isinstance(item, str):
                    break
                parts.append(item)
                if on_text is not None:
                    await on_text(item)
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.wait([reader])
        if isinstance(item, _End):
            return LLMResponse(text="".join(parts), model=answer.model, usage=answer.usage(),
                               latency_ms=item.latency_s * 1000)
        failure = explain(item)
        if parts:
            got = sum(len(p) for p in parts)
            raise LLMError(f"{provider}: the answer broke off after {got} characters: {failure.message}",
                           hint="the statements it had run are kept; run the program again with --resume to "
                                "ask the model once more") from None
        if not failure.retryable or attempt == policy.attempts:
            tries = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
            raise LLMError(f"{provider}: {failure.message}{tries}", hint=failure.hint) from None
        await asyncio.sleep(policy.delay_s(attempt, failure.retry_after_s))
    raise AssertionError("unreachable")  # policy.attempts >= 1


async def _read(stream: AsyncIterator[str], queue: asyncio.Queue[Any]) -> None:
    started = time.perf_counter()
    try:
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for text in stream:
                if text:
                    queue.put_nowait(text)
    except Exception as exc:
        queue.put_nowait(exc)
        return
    queue.put_nowait(_End(time.perf_counter() - started))


def json_object(data: str) -> dict[str, Any]:
    """One SSE data payload: a JSON object, or ValueError."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object in the stream, got {data[:80]!r}")
    return value
