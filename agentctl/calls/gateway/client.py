"""The CLI's client of the stack's gateway: httpx, pydantic and the events only, so that a call on
the warm path never imports Ray, Prefect or openai.

httpx's errors are translated here, once:

    GatewayDown       the gateway did not take the request (refused, no answer within ``read_timeout``,
                      401, 409): nothing
                      ran, the caller goes through Ray instead
    GatewayLost       the gateway went away, or sent nothing for ``read_timeout`` seconds, while it
                      streamed a request (a StackError, exit 1)
    AgentctlError     the gateway refused the request as the Ray path would (400, 404, 503): its
                      message and exit code, as it sent them
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from agentctl import errors
from agentctl.errors import AgentctlError, StackError
from agentctl.events import Event, Failed

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
# Connecting is local and fast. Reads wait ``read_timeout``: a stream quiet for as long as a process
# runs still gets the gateway's keep-alive lines (an empty line a second).
READ_TIMEOUT = 10.0
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
    """The gateway at ``url``, called with its bearer ``token``; it counts as hung once it has sent
    nothing for ``read_timeout`` seconds."""

    def __init__(self, url: str, token: str, read_timeout: float = READ_TIMEOUT) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        # trust_env=False: a proxy from the environment must never see loopback calls or the token.
        # verify=False: the gateway speaks plain HTTP on 127.0.0.1 only; loading the CA bundle for a
        # TLS that never happens costs ~50 ms of every warm call.
        timeout = httpx.Timeout(30.0, connect=5.0, read=read_timeout)
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False, verify=False)
        self.url, self.read_timeout = url, read_timeout

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[Event]:
        """POST ``body`` and the events the gateway streams back; ``GatewayDown`` before any event when
        it did not take the request (raised at once: the stream is open when this returns).

        The request expires when this stops waiting for its answer: a gateway that reads it later
        (it hung, then went on) does not start it, as the call has gone through Ray meanwhile."""
        expires = time.time() + self.read_timeout
        request = self._http.build_request("POST", path, json={**body, "expires": expires})
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise GatewayDown(f"it does not answer ({self._reason(exc)})") from None
        if response.status_code != 200:
            try:
                response.read()
            finally:
                response.close()
            raise _refused(response)
        return _events(response, self.read_timeout)

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
            raise GatewayDown(f"it does not answer ({self._reason(exc)})") from None
        if response.status_code != 200:
            raise _refused(response)
        return response.json()

    def _reason(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.ReadTimeout):
            return f"nothing within {self.read_timeout:g} s"
        return _reason(exc)


def _events(response: httpx.Response, read_timeout: float) -> Iterator[Event]:
    """The response's lines as events (its empty keep-alive lines skipped); the response is closed
    however the iteration ends (the gateway then cancels the request if it had not ended: Ctrl-C, an
    error here, a gateway silent for ``read_timeout`` seconds)."""
    try:
        for line in response.iter_lines():
            if line:
                yield _event(EVENTS.validate_json(line))
    except httpx.ReadTimeout:
        silent = f"nothing for {read_timeout:g} s"
        raise GatewayLost(f"the stack's gateway stopped answering mid-request ({silent})") from None
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
