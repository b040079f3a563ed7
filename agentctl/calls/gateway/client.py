"""The CLI's client of the stack's gateway: httpx, pydantic and the events only, so that a call on
the warm path never imports Ray, Prefect or openai.

httpx's errors are translated here, once:

    GatewayDown       the gateway did not take the request (no answer, refused, 401, 409): nothing
                      ran, the caller goes through Ray instead
    GatewayLost       the gateway went away while it streamed a request (a StackError, exit 1)
    AgentctlError     the gateway refused the request as the Ray path would (400, 404, 503): its
                      message and exit code, as it sent them
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from agentctl import errors
from agentctl.errors import AgentctlError, StackError
from agentctl.events import Event, Failed

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
# A stream may be quiet for as long as a process runs: no read timeout; connecting is local and fast.
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=None)
NOT_OURS = {401, 409}  # another process on the port, or settings the gateway will not serve: go through Ray


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
    """The gateway at ``url``, called with its bearer ``token``."""

    def __init__(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        # trust_env=False: a proxy from the environment must never see loopback calls or the token.
        # verify=False: the gateway speaks plain HTTP on 127.0.0.1 only; loading the CA bundle for a
        # TLS that never happens costs ~50 ms of every warm call.
        self._http = httpx.Client(base_url=url, headers=headers, timeout=STREAM_TIMEOUT, trust_env=False, verify=False)
        self.url = url

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[Event]:
        """POST ``body`` and the events the gateway streams back; ``GatewayDown`` before any event when
        it did not take the request (raised at once: the stream is open when this returns)."""
        request = self._http.build_request("POST", path, json=body)
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise GatewayDown(f"it does not answer ({_reason(exc)})") from None
        if response.status_code != 200:
            try:
                response.read()
            finally:
                response.close()
            raise _refused(response)
        return _events(response)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path``: its JSON document."""
        return self._call("GET", path, params)

    def post(self, path: str) -> Any:
        """POST ``path`` with no body: its JSON document."""
        return self._call("POST", path, None)

    def _call(self, method: str, path: str, params: dict[str, Any] | None) -> Any:
        try:
            response = self._http.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise GatewayDown(f"it does not answer ({_reason(exc)})") from None
        if response.status_code != 200:
            raise _refused(response)
        return response.json()


def _events(response: httpx.Response) -> Iterator[Event]:
    """The response's lines as events; the response is closed however the iteration ends (the
    gateway then cancels the request if it had not ended: Ctrl-C, an error here)."""
    try:
        for line in response.iter_lines():
            if line:
                yield _event(EVENTS.validate_json(line))
    except httpx.HTTPError as exc:
        raise GatewayLost(f"the stack's gateway went away mid-request ({_reason(exc)})") from None
    except ValidationError:
        raise GatewayLost("the stack's gateway sent a line that is no event") from None
    finally:
        response.close()


def _event(event: Event) -> Event:
    """``event``, or the error it carries when the gateway's side raised it (as a call through Ray raises it)."""
    if isinstance(event, Failed) and event.raised:
        kind = getattr(errors, event.error, None)
        if isinstance(kind, type) and issubclass(kind, AgentctlError) and kind.exit_code == event.exit_code:
            raise kind(event.message)
        raise type(event.error, (Refused,), {})(event.message, event.exit_code)
    return event


def _refused(response: httpx.Response) -> Exception:
    """The error for a response other than 200: ``GatewayDown`` when the request is not its to serve."""
    try:
        body = response.json()
        message, code = str(body["message"]), int(body["exit_code"])
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code}", 1
    if response.status_code in NOT_OURS or response.status_code >= 500 and "exit_code" not in response.text:
        return GatewayDown(f"it answered {response.status_code}: {message}")
    return Refused(message, code)


def _reason(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def raised(event: Event) -> Event:
    """``event``, or the error it carries when the gateway's side raised it (for streams read without
    ``Client``: a batch's)."""
    return _event(event)


def refusal(status: int, content: bytes) -> Exception:
    """The error for an answer other than 200 to a request made without ``Client`` (a batch's)."""
    return _refused(httpx.Response(status, content=content))
