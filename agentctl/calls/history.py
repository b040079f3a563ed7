"""Run history, read from the Prefect API over HTTP: the runs agentctl started (tagged ``agentctl``),
and one run's parameters, result, state history and logs.

The API is the running stack's, else the configured ``PREFECT_API_URL``, else a temporary server on
the one-call sessions' SQLite database under ``<data_dir>/prefect``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from agentctl import prefect_rest
from agentctl.config import Settings
from agentctl.errors import AgentctlError, NotFound, StackError, UsageError
from agentctl.events import PROCESS_TAG, REQUEST_TAG, RESULT_ARTIFACT, RUN_TAG, run_page
from agentctl.views import CancelOutput, LogRow, RunDetail, RunNode, RunRow, StateRow

STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED")
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
TREE_DEPTH = 3  # levels of runs ``show`` reads under a run: a request, its flows, their subflows
TREE_WIDTH = 200  # runs read under each flow run
CANCEL_MESSAGE = "cancelled with agentctl runs cancel"


@dataclass
class History:
    """A client of one Prefect API, and the UI that shows its runs, if any."""

    api_url: str
    ui_url: str | None
    http: httpx.Client

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the API; translate failures."""
        return self._checked(lambda: self.http.post(path, json=body))

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET from the API; None when it answers 404."""
        return self._checked(lambda: self.http.get(path, params=params), missing_ok=True)

    def _checked(self, send: Any, missing_ok: bool = False) -> Any:
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise StackError(f"the Prefect API at {self.api_url} did not answer ({exc}): is agentctl up?") from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise StackError(
                f"the Prefect API at {self.api_url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError:
            raise StackError(
                f"{self.api_url} answered with something other than JSON: is it a Prefect API (prefect.api_url)?"
            ) from None


@contextmanager
def history(settings: Settings) -> Iterator[History]:
    """The Prefect API that holds agentctl's runs, with a temporary server only when none is up."""
    from agentctl.stack.lifecycle import Stack

    stack = Stack.load(settings)
    if stack is not None and stack.keeps_history_for(settings):
        state = stack.state
        yield from _client(state.prefect_url, state.ui_url or _ui_beside(state.prefect_url))
    elif settings.prefect.api_url:
        yield from _client(settings.prefect.api_url, _ui_beside(settings.prefect.api_url))
    else:
        yield from _temporary(settings)


def _ui_beside(api_url: str) -> str | None:
    """The UI of a configured, self-hosted API as Prefect's links give it: PREFECT_UI_URL ("" for
    none), else the API's root."""
    if "PREFECT_UI_URL" in os.environ:
        return os.environ["PREFECT_UI_URL"] or None
    return api_url.rstrip("/").removesuffix("/api")


def _client(api_url: str, ui_url: str | None) -> Iterator[History]:
    with prefect_rest.client(api_url, timeout=30) as http:
        yield History(api_url, ui_url, http)


def _temporary(settings: Settings) -> Iterator[History]:
    from agentctl.stack.prefect_server import LocalPrefectAPI

    api = LocalPrefectAPI(settings.data_dir, settings.prefect.telemetry, settings.secret_names())
    api.start()
    try:
        api.wait_ready(settings.prefect.startup_timeout)
        yield from _client(api.url, None)
    finally:
        api.stop()


def recent(h: History, limit: int, state: str | None = None, process: str | None = None) -> list[RunRow]:
    """The newest ``limit`` requests and runs agentctl started, newest first: the top-level ones (a
    request's process runs are under it, in ``show``), or with ``process`` every run of it."""
    tags = [RUN_TAG, *([f"{PROCESS_TAG}{process}"] if process else [])]
    where: dict[str, Any] = {"tags": {"all_": tags}}
    if state is not None:
        where["state"] = {"type": {"any_": [state_type(state)]}}
    body = {"sort": "EXPECTED_START_TIME_DESC", "limit": limit}
    top_flows = {} if process else {"parent_task_run_id": {"is_null_": True}}
    top_tasks = {} if process else {"flow_run_id": {"is_null_": True}}
    flows = h.post("flow_runs/filter", {**body, "flow_runs": {**where, **top_flows}})
    tasks = h.post("task_runs/filter", {**body, "task_runs": {**where, **top_tasks}})
    rows = [_row(h, run, "flow") for run in flows] + [_row(h, run, "task") for run in tasks]
    return sorted(rows, key=lambda r: r.started or "", reverse=True)[:limit]


def state_type(state: str) -> str:
    """A Prefect state type from what a user typed (any case), or a UsageError listing them."""
    upper = state.upper()
    if upper not in STATES:
        raise UsageError(f"--state {state!r} is not a Prefect state: use one of {', '.join(s.lower() for s in STATES)}")
    return upper


def _row(h: History, run: dict[str, Any], kind: str) -> RunRow:
    state = run.get("state") or {}
    running = state.get("type") == "RUNNING"
    return RunRow(
        id=run["id"],
        name=run["name"],
        kind="request" if REQUEST_TAG in run.get("tags", []) else kind,
        process=_process(run),
        state=state.get("name") or state.get("type"),
        started=run.get("start_time") or run.get("expected_start_time"),
        duration=run.get("estimated_run_time" if running else "total_run_time"),
        url=run_page(h.ui_url, kind, run["id"]),
    )


def _process(run: dict[str, Any]) -> str | None:
    names = [t.removeprefix(PROCESS_TAG) for t in run.get("tags", []) if t.startswith(PROCESS_TAG)]
    return names[0] if names else None


def _read_run(h: History, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """The flow or task run ``run_id`` as the API has it (None if neither), and its kind."""
    _check_id(run_id)
    run, kind = h.get(f"flow_runs/{run_id}"), "flow"
    if run is None:
        run, kind = h.get(f"task_runs/{run_id}"), "task"
    return run, kind


def _no_run(h: History, run_id: str) -> str:
    return f"no run {run_id} in the Prefect API at {h.api_url}: list runs with agentctl runs"


def show(h: History, run_id: str) -> RunDetail:
    """One run: what ``recent`` says of it, its parameters, result, state history and logs."""
    run, kind = _read_run(h, run_id)
    if run is None:
        raise NotFound(_no_run(h, run_id))
    return RunDetail(
        **_row(h, run, kind).model_dump(),
        parameters=run.get("parameters") if kind == "flow" else None,
        message=(run.get("state") or {}).get("message"),
        result=_result(h, run_id, kind),
        states=_states(h, run_id, kind),
        logs=_logs(h, run_id, kind),
        children=_children(h, run_id, TREE_DEPTH) if kind == "flow" else [],
    )


def _children(h: History, flow_run_id: str, depth: int) -> list[RunNode]:
    """The runs under a flow run, in the order they started: its task runs, each in place of the
    flow run it stands for when it stands for one (a subflow, a request's flow or deployment run)."""
    body = {"sort": "EXPECTED_START_TIME_ASC", "limit": TREE_WIDTH}
    tasks = h.post("task_runs/filter", {**body, "task_runs": {"flow_run_id": {"any_": [flow_run_id]}}})
    if not tasks:
        return []
    standing = {"parent_task_run_id": {"any_": [task["id"] for task in tasks]}}
    flows = {run["parent_task_run_id"]: run for run in h.post("flow_runs/filter", {**body, "flow_runs": standing})}
    nodes = []
    for task in tasks:
        flow = flows.get(task["id"])
        row = _row(h, flow, "flow") if flow else _row(h, task, "task")
        below = _children(h, row.id, depth - 1) if flow and depth > 1 else []
        nodes.append(RunNode(**row.model_dump(), children=below))
    return nodes


def _check_id(run_id: str) -> None:
    try:
        UUID(run_id)
    except ValueError:
        raise UsageError(f"{run_id!r} is not a run id: copy one from agentctl runs") from None


def _states(h: History, run_id: str, kind: str) -> list[StateRow]:
    states = h.get(f"{kind}_run_states/", params={f"{kind}_run_id": run_id}) or []
    ordered = sorted(states, key=lambda s: s["timestamp"])
    return [StateRow(time=s["timestamp"], state=s["name"], message=s.get("message")) for s in ordered]


def _logs(h: History, run_id: str, kind: str) -> list[LogRow]:
    body = {"logs": {f"{kind}_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    return [
        LogRow(
            time=log["timestamp"],
            level=logging.getLevelName(log["level"]),
            logger=log["name"],
            message=log["message"],
        )
        for log in h.post("logs/filter", body)
    ]


def _result(h: History, run_id: str, kind: str) -> Any:
    body = {"artifacts": {f"{kind}_run_id": {"any_": [run_id]}, "type": {"any_": ["markdown"]}}}
    for artifact in h.post("artifacts/filter", body):
        if artifact.get("description") == RESULT_ARTIFACT:
            text = str(artifact["data"]).removeprefix("```json\n").removesuffix("\n```")
            return json.loads(text)
    return None


def cancel(h: History, run_id: str) -> CancelOutput:
    """Cancel a run that has not ended.

    A deployment's flow run is asked to go Cancelling, as ``prefect flow-run cancel`` does: its worker
    stops it and records Cancelled (one no worker took yet goes straight to Cancelled; one cancelled
    while Pending never starts but stays Cancelling: cancelled again, it is recorded Cancelled). A run in a
    router actor has no worker watching for that: it is set Cancelled at once; the code running in
    the actor is not interrupted (Ctrl-C in the call following it stops it).
    """
    run, kind = _read_run(h, run_id)
    if run is None:
        raise UsageError(_no_run(h, run_id))
    state = run.get("state") or {}
    if state.get("type") in FINAL:
        said = f"{kind} run {run['name']} ({run_id}) had already ended {state.get('name')}: nothing to cancel"
        return _cancelled(h, run, kind, state.get("name") or "?", said, done=False)
    # A run cancelled while Pending never starts, but no one records it Cancelled: it stays Cancelling.
    # Asked again, agentctl records it Cancelled itself.
    by_worker = kind == "flow" and run.get("deployment_id") is not None and state.get("type") != "CANCELLING"
    proposed = {"type": "CANCELLING" if by_worker else "CANCELLED", "message": CANCEL_MESSAGE}
    answer = h.post(f"{kind}_runs/{run_id}/set_state", {"state": proposed, "force": not by_worker})
    # A run no worker took yet is "rejected" from Cancelling straight into Cancelled: both are success.
    now_state = answer.get("state") or {}
    if now_state.get("type") not in ("CANCELLING", "CANCELLED"):
        reason = (answer.get("details") or {}).get("reason") or answer.get("status")
        raise AgentctlError(f"the Prefect API did not cancel {kind} run {run_id}: {reason}")
    now = now_state.get("name") or now_state["type"].title()
    how = "its worker stops it" if by_worker else _unstopped(run, kind)
    return _cancelled(h, run, kind, now, f"{kind} run {run['name']} ({run_id}) is {now}: {how}", done=True)


def _unstopped(run: dict[str, Any], kind: str) -> str:
    if kind == "flow" and run.get("deployment_id") is not None:
        return "it was Cancelling already, and is now recorded Cancelled"
    return "it ran in a router actor, which is not interrupted"


def _cancelled(h: History, run: dict[str, Any], kind: str, state: str, message: str, done: bool) -> CancelOutput:
    url = run_page(h.ui_url, kind, run["id"])
    return CancelOutput(
        id=run["id"], kind=kind, name=run["name"], state=state, cancelled=done, message=message, url=url
    )
