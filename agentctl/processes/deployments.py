"""Listing the user's Prefect deployments over the Prefect REST API, and making processes of them.

The listing uses httpx, not the prefect package: ``processes list`` must stay fast, and importing
Prefect alone costs about a second. It never raises: an API that cannot be read is one problem line,
and the local processes are listed without the deployments.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentctl.processes.deployment_schema import arguments_model
from agentctl.processes.deployment_source import Deployment, DeploymentSource
from agentctl.processes.registry import NAME_PATTERN, Process

PAGE = 200  # the most a Prefect server returns for one filter request (PREFECT_API_DEFAULT_LIMIT)
TIMEOUT = 5.0  # seconds for each request: a listing must not hold up the command


@dataclass(frozen=True)
class PrefectAPI:
    """Where the deployments are listed from; ``key`` (Prefect Cloud) is sent as a Bearer token only."""

    url: str
    key: str | None = field(default=None, repr=False)


@dataclass
class Listing:
    """The matching deployments, and the one line that says why there are none when the API failed."""

    deployments: list[Deployment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def list_deployments(api: PrefectAPI, patterns: list[str], tags: list[str]) -> Listing:
    """The deployments whose ``flow/deployment`` matches one of ``patterns`` and that carry all ``tags``."""
    import httpx

    from agentctl import prefect_rest

    try:
        with prefect_rest.client(api.url, TIMEOUT, _headers(api), trust_env=True) as client:
            found = [_record(d, flows) for d, flows in _read(client, tags)]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return Listing(problems=[f"could not list Prefect deployments from {api.url}: {_why(exc)}"])
    return Listing(deployments=[d for d in found if _matches(d.full_name, patterns)])


def _headers(api: PrefectAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.key}"} if api.key else {}


def _read(client: Any, tags: list[str]) -> Iterable[tuple[dict[str, Any], dict[str, str]]]:
    """Every deployment with ``tags``, page by page, with the names of their flows."""
    body: dict[str, Any] = {"deployments": {"tags": {"all_": tags}}} if tags else {}
    deployments: list[dict[str, Any]] = []
    while len(page := _post(client, "deployments/filter", {**body, "limit": PAGE, "offset": len(deployments)})) > 0:
        deployments.extend(page)
        if len(page) < PAGE:
            break
    flow_ids = sorted({d["flow_id"] for d in deployments})
    flows = _post(client, "flows/filter", {"flows": {"id": {"any_": flow_ids}}}) if flow_ids else []
    names = {f["id"]: f["name"] for f in flows}
    return [(d, names) for d in deployments]


def _post(client: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(path, json=body)
    response.raise_for_status()
    result = response.json()
    if not isinstance(result, list):
        raise ValueError(f"{path} answered {type(result).__name__}, not a list")
    return result


def _record(raw: dict[str, Any], flow_names: dict[str, str]) -> Deployment:
    return Deployment(
        id=str(raw["id"]),
        flow_name=flow_names.get(raw["flow_id"], str(raw["flow_id"])),
        name=str(raw["name"]),
        description=raw.get("description") or None,
        parameter_schema=raw.get("parameter_openapi_schema") or {},
        work_pool=raw.get("work_pool_name"),
        tags=tuple(raw.get("tags") or ()),
        schedules=tuple(_schedule(s) for s in raw.get("schedules") or ()),
        paused=bool(raw.get("paused")),
    )


def _schedule(raw: dict[str, Any]) -> str:
    """A schedule as people read it: ``every 3600 s``, ``cron 0 * * * *``, ``rrule ...``; `(inactive)`."""
    spec = raw.get("schedule") or {}
    zone = f" ({spec['timezone']})" if spec.get("timezone") else ""
    if "interval" in spec:
        text = f"every {spec['interval']:g} s"
    elif "cron" in spec:
        text = f"cron {spec['cron']}{zone}"
    else:
        text = f"rrule {spec.get('rrule', '?')}"
    return text if raw.get("active", True) else f"{text} (inactive)"


def _matches(full_name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(full_name, p) for p in patterns)


def _why(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return f"it answered {exc.response.status_code} {exc.response.reason_phrase}"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in {TIMEOUT:g} s"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot connect ({type(exc).__name__}); is it running?"
    return f"an answer it could not read ({type(exc).__name__}: {exc})"


def tool_name(deployment: Deployment) -> str:
    """A tool name for ``flow/deployment``: ``etl__daily_load``; too long, a stable hash ends it."""
    parts = [re.sub(r"[^A-Za-z0-9_]+", "_", p).strip("_") or "x" for p in (deployment.flow_name, deployment.name)]
    name = "__".join(parts)
    if NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(deployment.full_name.encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


def as_process(deployment: Deployment) -> Process:
    """The process that runs ``deployment``, approved by a person before each run (its effects are unknown).

    Its description is the first paragraph of the deployment's (Prefect's default: the flow's docstring,
    whose ``Args:`` already describe the parameters in the schema), else its Prefect name.
    """
    name = tool_name(deployment)
    summary = " ".join((deployment.description or "").strip().split("\n\n")[0].split())
    description = summary or f"Prefect deployment {deployment.full_name}"
    model = arguments_model(name, deployment.parameter_schema)
    return Process(name, description, model, DeploymentSource(deployment), confirm=True)


def to_records(deployments: Iterable[Deployment]) -> list[dict[str, Any]]:
    """Deployments as JSON-able records, to hand to the router actors with a request."""
    return [dataclasses.asdict(d) for d in deployments]


def from_records(records: Iterable[dict[str, Any]]) -> list[Deployment]:
    """The deployments ``to_records`` made."""
    return [
        Deployment(**{**r, "tags": tuple(r.get("tags", ())), "schedules": tuple(r.get("schedules", ()))})
        for r in records
    ]
