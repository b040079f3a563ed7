"""The CLI's client of the stack's gateway: the standard library's ``http.client``, pydantic and the
events only, so that a call on the warm path never imports Ray, Prefect or openai.

Not httpx: importing it (with httpcore and h2) and building its client cost ~75 ms of every warm call,
which is plain HTTP/1.1 to 127.0.0.1. Transport errors are translated here, once:

    GatewayDown       the gateway did not take the request (refused, no answer within ``read_timeout``,
                      401, 409): nothing ran, the caller goes through Ray instead
    GatewayLost       the gateway went away, or sent nothing for ``read_timeout`` seconds, while it
                      streamed a request (a StackError, exit 1)
    AgentctlError     the gateway refused the request as the Ray path would (400, 404, 503): its
                      message and exit code, as it sent them
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from pydantic import TypeAdapter, ValidationError

from agentctl import errors
from agentctl.errors import AgentctlError, StackError
from agentctl.events import Event, Failed

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
CONNECT_TIMEOUT = 5.0  # the gateway is local: connecting is fast, or it is not there
# Reads of a stream wait ``read_timeout``: one quiet for as long as a process runs still gets the
# gateway's keep-alive lines (an empty line a second).
READ_TIMEOUT = 10.0
NOT_OURS = {401, 409}  # another process on the port, or settings the gateway will not serve: go through Ray
TRANSPORT = (OSError, http.client.HTTPException)  # socket errors and timeouts are OSErrors


class GatewayDown(Exception):
    """The gateway did not take the request and nothing ran; ``str()`` says why (for a warning line)."""


class GatewayLost(StackError):
    """The gateway went away while it streamed a request."""


class Refused(AgentctlError):
    """The gateway refused the request; its exit code is the one the gateway sent."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """The gateway at ``url``, called with its bearer ``token``, one connection per request; it counts
    as hung once it has sent nothing for ``read_timeout`` seconds."""

    def __init__(self, url: str, token: str, read_timeout: float = READ_TIMEOUT) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = {"Authorization": f"Bearer {token}"}
        self._open: list[http.client.HTTPConnection] = []
        self.url, self.read_timeout = url, read_timeout

    def close(self) -> None:
        """Close the connections."""
        for connection in self._open:
            connection.close()
        self._open.clear()

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[Event]:
        """POST ``body`` and the events the gateway streams back; ``GatewayDown`` before any event when
        it did not take the request (raised at once: the stream is open when this returns).

        The request expires when this stops waiting for its answer: a gateway that reads it later
        (it hung, then went on) does not start it, as the call has gone through Ray meanwhile."""
        expires = time.time() + self.read_timeout
        response = self._send("POST", path, json.dumps({**body, "expires": expires}).encode())
        if response.status != 200:
            try:
                raise _refused(response)
            except TRANSPORT as exc:
                raise GatewayDown(f"it does not answer ({self._reason(exc)})") from None
        return _events(response, self.read_timeout)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path``: its JSON document."""
        return self._call("GET", f"{path}?{urlencode(params)}" if params else path)

    def post(self, path: str) -> Any:
        """POST ``path`` with no body: its JSON document."""
        return self._call("POST", path)

    def _call(self, method: str, path: str) -> Any:
        response = self._send(method, path, None)
        try:
            if response.status != 200:
                raise _refused(response)
            return json.loads(response.read())
        except (*TRANSPORT, ValueError) as exc:  # ValueError: a body that is no JSON, not the gateway's
            raise GatewayDown(f"it does not answer ({self._reason(exc)})") from None
        finally:
            response.close()

    def _send(self, method: str, path: str, body: bytes | None) -> http.client.HTTPResponse:
        """The response's status and headers, read; ``GatewayDown`` when there are none."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
        self._open.append(connection)
        headers = {**self._headers, "Content-Type": "application/json"} if body is not None else self._headers
        try:
            connection.connect()
            connection.sock.settimeout(self.read_timeout)
            connection.request(method, path, body, headers)
            return connection.getresponse()
        except TRANSPORT as exc:
            connection.close()
            raise GatewayDown(f"it does not answer ({self._reason(exc)})") from None

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"nothing within {self.read_timeout:g} s"
        return _reason(exc)


def _events(response: http.client.HTTPResponse, read_timeout: float) -> Iterator[Event]:
    """The response's lines as events (its empty keep-alive lines skipped); the response is closed
    however the iteration ends (the gateway then cancels the request if it had not ended: Ctrl-C, an
    error here, a gateway silent for ``read_timeout`` seconds)."""
    read = False
    try:
        while line := response.readline():
            read = True
            if line.strip():
                yield _event(EVENTS.validate_json(line))
        if _cut(response) or not read:  # the gateway starts every stream with a keep-alive line
            raise http.client.IncompleteRead(b"")
    except TimeoutError:
        silent = f"nothing for {read_timeout:g} s"
        raise GatewayLost(f"the stack's gateway stopped answering mid-request ({silent})") from None
    except TRANSPORT as exc:
        raise GatewayLost(f"the stack's gateway went away mid-request ({_reason(exc)})") from None
    except ValidationError:
        raise GatewayLost("the stack's gateway sent a line that is no event") from None
    finally:
        response.close()


def _cut(response: http.client.HTTPResponse) -> bool:
    """Whether the body ended before its end: ``readline`` reads a connection closed mid-stream as
    the end of the body, where the last chunk (or the announced length) never came."""
    if response.chunked:
        return response.chunk_left is not None  # None once the last chunk was read
    return response.length not in (None, 0)


def _event(event: Event) -> Event:
    """``event``, or the error it carries when the gateway's side raised it (as a call through Ray raises it)."""
    if isinstance(event, Failed) and event.raised:
        kind = getattr(errors, event.error, None)
        if isinstance(kind, type) and issubclass(kind, AgentctlError) and kind.exit_code == event.exit_code:
            raise kind(event.message)
        raise type(event.error, (Refused,), {})(event.message, event.exit_code)
    return event


def _refused(response: http.client.HTTPResponse) -> Exception:
    """The error for a response other than 200 (read and closed here)."""
    try:
        return refusal(response.status, response.read())
    finally:
        response.close()


def refusal(status: int, content: bytes) -> Exception:
    """The error for an answer other than 200: ``GatewayDown`` when the request is not the gateway's
    to serve (also for a request made without ``Client``: a batch's)."""
    text = content.decode(errors="replace")
    try:
        body = json.loads(text)
        message, code = str(body["message"]), int(body["exit_code"])
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {status}", 1
    if status in NOT_OURS or status >= 500 and "exit_code" not in text:
        return GatewayDown(f"it answered {status}: {message}")
    return Refused(message, code)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def raised(event: Event) -> Event:
    """``event``, or the error it carries when the gateway's side raised it (for streams read without
    ``Client``: a batch's)."""
    return _event(event)
