"""The processes a call can use: the registered ones, the user's Prefect deployments, listed once, and
the tools of the configured MCP servers (listed here for the commands that run nothing; the router
actors list them on their own sessions).

The deployments come from the Prefect API in use: the configured one (``PREFECT_API_URL`` /
``prefect.api_url``), else the stack's of ``agentctl up``. A session's own temporary API is never
asked: it holds no deployments of the user's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agentctl.config import PREFECT_KEY_ENV, Settings
from agentctl.errors import StackError
from agentctl.processes.deployments import Listing, PrefectAPI, list_deployments
from agentctl.processes.discovery import Discovered, discover, with_deployments, with_mcp_tools
from agentctl.stack.state import read_state

NO_API = (
    "processes.deployments is set but there is no Prefect API to list deployments from: "
    "set PREFECT_API_URL (or prefect.api_url), or start one with agentctl up"
)


def deployment_api(settings: Settings, environ: Mapping[str, str] | None = None) -> PrefectAPI | None:
    """The Prefect API deployments are listed from, with Prefect Cloud's key when one is set."""
    url = settings.prefect.api_url or _stack_url(settings)
    key = (os.environ if environ is None else environ).get(PREFECT_KEY_ENV) or None
    return PrefectAPI(url, key) if url else None


def _stack_url(settings: Settings) -> str | None:
    try:
        state = read_state(settings)
    except StackError:
        return None  # a stack record we cannot read is reported by the commands that use the stack
    return state.prefect_url if state is not None and state.ready else None


def list_for(settings: Settings) -> Listing:
    """The deployments ``processes.deployments`` names; no API call when it names none."""
    if not settings.processes.deployments:
        return Listing()
    api = deployment_api(settings)
    if api is None:
        return Listing(problems=[NO_API])
    return list_deployments(api, settings.processes.deployments, settings.processes.deployment_tags)


def catalog(settings: Settings, listing: Listing) -> Discovered:
    """The registered processes plus those of ``listing`` and the tools of the configured MCP servers
    (each asked here, with a short-lived session); every problem of them all, one line each."""
    from agentctl.processes.mcp_listing import list_tools

    found = with_deployments(discover(settings), listing.deployments, settings.processes.disable)
    found.problems.extend(listing.problems)
    return with_mcp_tools(found, list_tools(settings), settings.processes.disable)
