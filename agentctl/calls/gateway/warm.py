"""The CLI's warm path: ``ask``, ``processes run``, ``runs`` and ``status`` through the stack's
gateway when the stack is up, usable for this call's settings, and its gateway answers.

Else the call goes through Ray as before (``calls.session``), after one warning line when the
gateway should have served it (enabled, but dead or not answering): a dead gateway does not make
the stack unusable. ``--standalone`` never uses it. Nothing here imports Ray, Prefect or openai.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from agentctl.calls.approval import Approval, approved_events
from agentctl.calls.gateway.client import Client, GatewayDown, GatewayLost
from agentctl.config import Settings
from agentctl.errors import StackError
from agentctl.events import Event, Log, Paused, follow
from agentctl.processes.approval import Approved
from agentctl.processes.deployments import Listing
from agentctl.processes.discovery import anchored
from agentctl.stack import gateway
from agentctl.stack.health import unusable_for
from agentctl.stack.state import StackState, read_state
from agentctl.stack.worker_env import secrets_of
from agentctl.views import CancelOutput, RunDetail, RunRow, RunsOutput, StackDown, StackUp, StatusView

HEAL = "agentctl up restarts it"


@dataclass
class Warm:
    """The gateway that serves this call (``client``), or why it does not when it should (``notice``)."""

    client: Client | None = None
    state: StackState | None = None
    notice: str | None = None


def choose(settings: Settings) -> Warm:
    """The stack's gateway for a call with ``settings``: none when the stack cannot serve the call
    (the Ray path says why), a notice when its gateway is enabled but not running."""
    try:
        state = read_state(settings)
    except StackError:
        return Warm()
    if state is None or not settings.gateway.enabled or unusable_for(state, settings) is not None:
        return Warm()
    if state.gateway_url is None or not gateway.runs(state):
        return Warm(state=state, notice=down("it is not running"))
    return Warm(Client(state.gateway_url, gateway.token(settings), settings.gateway.read_timeout), state)


def down(why: str, instead: str = "goes through Ray") -> str:
    """The warning line for a gateway that should have served the call."""
    return f"the stack's gateway is down ({why}): this call {instead}; {HEAL}"


def ask_once(
    settings: Settings,
    request: str,
    standalone: bool = False,
    approval: Approval | None = None,
    detach: bool = False,
    history: list[dict[str, Any]] | None = None,
) -> Iterator[Event]:
    """``calls.session.ask_once``, through the gateway when it serves the call."""
    settings.api_key()
    warm = Warm() if standalone else choose(settings)
    if warm.client is not None:
        try:
            events = _Caller(settings, warm).ask(request, approval or Approval(), detach, history)
        except GatewayDown as exc:
            warm.client.close()
            warm.notice = down(str(exc))
        else:
            return events
    return _through_ray(warm, lambda: _ray_ask(settings, request, standalone, approval, detach, history))


def run_once(
    settings: Settings,
    name: str,
    arguments: dict[str, Any],
    standalone: bool = False,
    listing: Listing | None = None,
    approval: Approval | None = None,
    detach: bool = False,
) -> Iterator[Event]:
    """``calls.session.run_once``, through the gateway when it serves the call."""
    warm = Warm() if standalone else choose(settings)
    if warm.client is not None:
        try:
            return _Caller(settings, warm).run(name, arguments, approval or Approval(), detach)
        except GatewayDown as exc:
            warm.client.close()
            warm.notice = down(str(exc))
    return _through_ray(warm, lambda: _ray_run(settings, name, arguments, standalone, listing, approval, detach))


def _through_ray(warm: Warm, events: Callable[[], Iterator[Event]]) -> Iterator[Event]:
    if warm.notice is not None:
        yield Log(time=time.time(), level="WARNING", run_name="agentctl", message=warm.notice)
    yield from events()


def _ray_ask(settings: Settings, *args: Any) -> Iterator[Event]:
    from agentctl.calls.session import ask_once as ask

    return ask(settings, *args)


def _ray_run(settings: Settings, *args: Any) -> Iterator[Event]:
    from agentctl.calls.session import run_once as run

    return run(settings, *args)


class _Caller:
    """One call's requests to the gateway, each with the caller's settings and secrets."""

    def __init__(self, settings: Settings, warm: Warm) -> None:
        assert warm.client is not None and warm.state is not None
        self._client, self._state = warm.client, warm.state
        # Its paths anchored here: the gateway runs elsewhere. Its database is the stack's concern.
        self._who = {
            "settings": anchored(settings).model_dump(mode="json", exclude={"database"}),
            "secrets": secrets_of(settings),
        }

    def ask(
        self, request: str, approval: Approval, detach: bool, history: list[dict[str, Any]] | None
    ) -> Iterator[Event]:
        """The request's events; the first stream is open on return (``GatewayDown`` if it was not taken)."""
        ask = {"request": request, "detach": detach}
        first = self._stream("/v1/ask", {**ask, "history": history}, approval.approved)

        def resume(paused: Paused, approved: Approved) -> Iterator[Event]:
            return self._later("/v1/ask", {**ask, "resume": paused.model_dump(mode="json")}, approved)

        return self._watched(approved_events(first, approval, self._runner(detach), resume))

    def run(self, name: str, arguments: dict[str, Any], approval: Approval, detach: bool) -> Iterator[Event]:
        """The run's events; the stream is open on return, as for ``ask``."""
        body = {"arguments": arguments, "detach": detach}
        first = self._stream(f"/v1/processes/{name}/runs", body, approval.approved)
        return self._watched(approved_events(first, approval, self._runner(detach)))

    def _runner(self, detach: bool) -> Callable[[str, dict[str, Any], Approved], Iterator[Event]]:
        def run(name: str, arguments: dict[str, Any], approved: Approved) -> Iterator[Event]:
            return self._later(f"/v1/processes/{name}/runs", {"arguments": arguments, "detach": detach}, approved)

        return run

    def _stream(self, path: str, body: dict[str, Any], approved: Approved) -> Iterator[Event]:
        approvals = {"everything": approved.everything, "names": sorted(approved.names)}
        return self._client.stream(path, {**body, **self._who, "approved": approvals})

    def _later(self, path: str, body: dict[str, Any], approved: Approved) -> Iterator[Event]:
        """A stream after the first (an approved run, a resumed request): the gateway was there a moment ago."""
        try:
            yield from self._stream(path, body, approved)
        except GatewayDown as exc:
            raise GatewayLost(f"the stack's gateway went away mid-request ({exc})") from None

    def _watched(self, events: Iterator[Event]) -> Iterator[Event]:
        """``events``; when the gateway goes away, the runs left in progress are marked Crashed."""
        runs: dict[str, str] = {}
        try:
            for event in events:
                follow(runs, event)
                yield event
        except GatewayLost as exc:
            raise GatewayLost(f"{exc}{self._marked(runs)}: {HEAL}") from None
        finally:
            self._client.close()

    def _marked(self, runs: dict[str, str]) -> str:
        from agentctl.stack.prefect_server import mark_crashed

        why = "the stack's gateway went away while it ran (agentctl)"
        marked = [i for i, kind in runs.items() if mark_crashed(self._state.prefect_url, i, kind, why)]
        return f"; its Prefect runs {', '.join(marked)} are marked Crashed" if marked else ""


Warn = Callable[[str], None]


def runs(settings: Settings, limit: int, state: str | None, process: str | None, warn: Warn) -> RunsOutput:
    """``agentctl runs``: through the gateway when it serves the call, else from the Prefect API here."""
    params = {"limit": limit, "state": state, "process": process}
    got = _read(settings, warn, "GET", "/v1/runs", {k: v for k, v in params.items() if v is not None})
    if got is not None:
        document, stack = got
        return RunsOutput(runs=[RunRow.model_validate(row) for row in document], api_url=stack.prefect_url)
    from agentctl.calls.history import history, recent

    with history(settings) as h:
        return RunsOutput(runs=recent(h, limit, state, process), api_url=h.api_url)


def show(settings: Settings, run_id: str, warn: Warn) -> RunDetail:
    """``agentctl runs show ID``, through the gateway when it serves the call."""
    got = _read(settings, warn, "GET", f"/v1/runs/{_quoted(run_id)}")
    if got is not None:
        return RunDetail.model_validate(got[0])
    from agentctl.calls.history import history
    from agentctl.calls.history import show as read

    with history(settings) as h:
        return read(h, run_id)


def cancel(settings: Settings, run_id: str, warn: Warn) -> CancelOutput:
    """``agentctl runs cancel ID``, through the gateway when it serves the call."""
    got = _read(settings, warn, "POST", f"/v1/runs/{_quoted(run_id)}/cancel")
    if got is not None:
        return CancelOutput.model_validate(got[0])
    from agentctl.calls.history import cancel as cancel_run
    from agentctl.calls.history import history

    with history(settings) as h:
        return cancel_run(h, run_id)


def status(settings: Settings) -> StatusView:
    """``agentctl status``: asked of the gateway (no Ray connection here) when it answers; else judged
    here, where a dead gateway shows as such (no warning: status is what tells it)."""
    got = _read(settings, lambda line: None, "GET", "/v1/status")
    if got is not None:
        document = got[0]
        return StackUp.model_validate(document) if "started_at" in document else StackDown.model_validate(document)
    from agentctl.calls.status import status as judged

    return judged(settings)


def _read(
    settings: Settings, warn: Warn, method: str, path: str, params: dict[str, Any] | None = None
) -> tuple[Any, StackState] | None:
    """The gateway's JSON answer and the stack it serves; None (after ``warn`` when it should have
    answered) when the call is not its to serve."""
    warm = choose(settings)
    why = "it is not running"
    if warm.client is not None and warm.state is not None:
        try:
            with closing(warm.client) as client:
                return (client.get(path, params) if method == "GET" else client.post(path)), warm.state
        except GatewayDown as exc:
            why = str(exc)
    if warm.notice is not None or warm.client is not None:
        warn(down(why, "is answered without it"))
    return None


def _quoted(run_id: str) -> str:
    from urllib.parse import quote

    return quote(run_id, safe="")
