"""What the router actors' processes are given: their environment (never secrets) and, apart, the
secrets they need, read from the variables the settings name."""

from __future__ import annotations

import os

from agentctl.config import Settings


def secrets_of(settings: Settings) -> dict[str, str]:
    """The secrets the router actors need, from the environment variables the settings name."""
    names = {settings.llm.key_env(), settings.github.token_env, *settings.mcp.secret_names()}
    return {n: os.environ[n] for n in names if os.environ.get(n)}


def actor_env(settings: Settings, prefect_url: str, ui_url: str | None) -> dict[str, str]:
    """Environment of the router actors' processes (no secrets: those go to the constructor; the
    user's code travels apart, see ``shipping``)."""
    env = {
        "PREFECT_API_URL": prefect_url,
        "PREFECT_HOME": str(settings.data_dir / "prefect"),
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    if os.environ.get("PYTHONPATH"):  # the user's own, where plugins may be installed; ahead of it, Ray's py_modules
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if not settings.prefect.telemetry:
        env["DO_NOT_TRACK"] = "1"
    if ui_url is not None:  # "" turns Prefect's "View at" links off
        env["PREFECT_UI_URL"] = ui_url
    return env


def without_secrets(settings: Settings) -> dict[str, str]:
    """This process's environment minus the variables that hold secrets, for the servers we start."""
    return {k: v for k, v in os.environ.items() if k not in settings.secret_names()}
