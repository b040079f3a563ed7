"""Configuration: one pydantic model, loaded from flags, then environment, then a TOML file.

Precedence, highest first: command-line flags, environment variables, the config file
(``--config``, ``AGENTCTL_CONFIG`` or ``<user config dir>/agentctl/config.toml``), defaults.
Secrets are never stored here: the model holds the *names* of the environment variables that carry
them, and ``secret()`` reads them when needed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentctl.errors import ConfigError, MissingCredential


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPrice(_Section):
    """What a million tokens of one model cost, sent (input) and received (output), in any currency."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMSettings(_Section):
    """How to reach the LLM that routes requests."""

    provider: Literal["openai", "azure"] = "openai"
    mode: Literal["tools", "json_schema"] = "tools"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    strict_tools: bool = True
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    prices: dict[str, ModelPrice] = {}  # per model name: what a million tokens cost

    def key_env(self) -> str:
        """The environment variable that holds the API key."""
        if self.api_key_env:
            return self.api_key_env
        return "AZURE_OPENAI_API_KEY" if self.provider == "azure" else "OPENAI_API_KEY"


class GitHubSettings(_Section):
    """The GitHub API used by the built-in repository process."""

    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay_seconds: float = Field(default=2.0, ge=0)
    max_pages: int = Field(default=100, ge=1)


class PoolSettings(_Section):
    """The pool of router actors."""

    size: int = Field(default=2, ge=1, le=64)
    per_node: int = Field(default=0, ge=0, le=64)  # above 0: that many on each alive node, size ignored


class RaySettings(_Section):
    """Which Ray cluster to use."""

    address: str | None = None
    dashboard: bool = False
    num_cpus: int | None = Field(default=None, ge=1)


class PrefectSettings(_Section):
    """Which Prefect API to use."""

    api_url: str | None = None
    telemetry: bool = False
    startup_timeout: float = Field(default=60.0, gt=0)


class DatabaseSettings(_Section):
    """The database of the Prefect server ``agentctl up`` starts."""

    url: str | None = None
    postgres_bin: str | None = None


class RouterSettings(_Section):
    """How the router asks the LLM and repairs its answers, and what bounds one request."""

    repair_attempts: int = Field(default=1, ge=0, le=5)
    max_tools: int = Field(default=32, ge=1, le=128)
    max_steps: int = Field(default=5, ge=1, le=50)  # LLM turns of one request; 1: route once, run, no answer
    max_result_chars: int = Field(default=4000, ge=100)  # of each process result sent back to the model
    max_tokens: int | None = Field(default=None, ge=1)  # LLM tokens of one request, every call counted
    max_cost: float | None = Field(default=None, gt=0)  # of one request, with llm.prices for its model
    history_tokens: int = Field(default=4000, ge=0)  # earlier turns sent with a request (REPL, ask -c)


class ProcessesSettings(_Section):
    """Where processes come from, besides the ``agentctl.processes`` entry points."""

    modules: list[str] = []
    paths: list[str] = []
    disable: list[str] = []
    deployments: list[str] = []  # fnmatch patterns over flow-name/deployment-name; empty: none listed
    deployment_tags: list[str] = []  # a listed deployment carries all of them
    worker_wait: float = Field(default=30.0, gt=0)  # seconds a deployment run may wait for a worker unannounced
    confirm: list[str] = []  # fnmatch patterns of process names whose runs a person approves first
    auto_approve: list[str] = []  # ... and of those that run without asking, their own flag notwithstanding
    run_tags: list[str] = []  # more tags on every Prefect run agentctl starts (after agentctl, process:<name>)

    @field_validator(
        "modules",
        "paths",
        "disable",
        "deployments",
        "deployment_tags",
        "confirm",
        "auto_approve",
        "run_tags",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        # From the environment a list arrives as one comma-separated string.
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


class McpServerSettings(_Section):
    """One ``[[mcp.servers]]`` entry: an MCP server whose tools become processes (kind ``mcp``).

    Values of ``headers`` and ``env`` are secrets, masked in every output: write them as ``${VAR}``
    references, read from the environment when the server is reached (literal values are masked too).
    """

    name: str = Field(min_length=1, max_length=40)
    command: list[str] = []  # started over stdio, once per router actor
    url: str | None = None  # or reached over streamable HTTP
    headers: dict[str, str] = {}
    env: dict[str, str] = {}
    cwd: str | None = None  # where the command starts; default: the directory agentctl was run from
    # (exactly one of command and url; a wrong entry is one warning line naming it, the others still work)
    timeout: float = Field(default=10.0, gt=0)  # seconds to start the server and list its tools
    call_timeout: float = Field(default=60.0, gt=0)  # seconds one tool call may take
    retries: int = Field(default=1, ge=0, le=10)  # of a call that failed in transport (never a tool's own error)
    retry_delay_seconds: float = Field(default=1.0, ge=0)
    confirm: bool | None = None  # None: read-only tools run at once, the others ask; true: all ask; false: none

    def secret_names(self) -> set[str]:
        """The environment variables its ``${VAR}`` references in headers and env name."""
        return {m for value in self._secret_texts() for m in SECRET_REFERENCE.findall(value)}

    def literal_secrets(self) -> list[str]:
        """Values of headers and env written out in the config: secrets too, masked like the others."""
        return [value for value in self._secret_texts() if value and not SECRET_REFERENCE.search(value)]

    def _secret_texts(self) -> list[str]:
        return [*self.headers.values(), *self.env.values()]


# ``${VAR}`` in an MCP server's headers and env: the value of VAR in the environment.
SECRET_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpServeSettings(_Section):
    """``agentctl mcp serve``: agentctl's processes as an MCP server (on 127.0.0.1 only, with ``--http``)."""

    port: int = Field(default=8765, ge=0, le=65535)  # of --http; 0: any free port, printed at start
    approval_wait: float = Field(default=300.0, gt=0)  # seconds an approval question waits for the client


class McpSettings(_Section):
    """The Model Context Protocol, both ways: other servers' tools as processes, agentctl as a server."""

    servers: list[McpServerSettings] = []
    serve: McpServeSettings = McpServeSettings()

    def secret_names(self) -> set[str]:
        """The variables the servers' headers and env refer to."""
        return {name for server in self.servers for name in server.secret_names()}


class GatewaySettings(_Section):
    """The stack's gateway: one long-lived process of ``agentctl up`` serving an HTTP API on 127.0.0.1."""

    enabled: bool = True  # false: up starts no gateway and every call goes through Ray, as before
    port: int = Field(default=0, ge=0, le=65535)  # 0: a free port, recorded in the stack's state
    startup_timeout: float = Field(default=60.0, gt=0)  # seconds up waits for it to answer
    # Seconds a CLI waits for the gateway's next line (or its answer) before it counts it hung: a
    # quiet stream still gets an empty line every second (calls.gateway.streams.KEEPALIVE): at least two.
    read_timeout: float = Field(default=10.0, ge=2)


class Settings(_Section):
    """Everything agentctl can be configured with; see config.example.toml."""

    llm: LLMSettings = LLMSettings()
    github: GitHubSettings = GitHubSettings()
    pool: PoolSettings = PoolSettings()
    ray: RaySettings = RaySettings()
    prefect: PrefectSettings = PrefectSettings()
    database: DatabaseSettings = DatabaseSettings()
    router: RouterSettings = RouterSettings()
    processes: ProcessesSettings = ProcessesSettings()
    mcp: McpSettings = McpSettings()
    gateway: GatewaySettings = GatewaySettings()
    data_dir: Path = Field(default_factory=lambda: default_data_dir())

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """The LLM API key from ``environ`` (default: the environment), or an error naming where to set it."""
        env = self.llm.key_env()
        value = (os.environ if environ is None else environ).get(env, "").strip()
        if not value:
            raise MissingCredential(
                f"no LLM API key: set {env} (or point llm.api_key_env at the variable that holds it)"
            )
        return value

    def secret_names(self) -> frozenset[str]:
        """Environment variables that hold secrets this configuration may use."""
        return frozenset(
            {self.llm.key_env(), self.github.token_env, "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", PREFECT_KEY_ENV}
            | self.mcp.secret_names()
        )

    def secret_values(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Values of every secret this configuration refers to in ``environ`` (default: the
        environment), for redaction."""
        env = os.environ if environ is None else environ
        literal = [value for server in self.mcp.servers for value in server.literal_secrets()]
        named = [v for v in (env.get(n, "") for n in self.secret_names()) if v]
        return named + _url_password(self.database.url) + literal


# Prefect Cloud's API key, as Prefect itself reads it; sent only to the Prefect API, never shown.
PREFECT_KEY_ENV = "PREFECT_API_KEY"

# Environment variables each key also reads, besides the generic AGENTCTL_<SECTION>__<KEY>.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "llm.base_url": ("OPENAI_BASE_URL",),
    "llm.model": ("AGENTCTL_MODEL",),
    "llm.azure_endpoint": ("AZURE_OPENAI_ENDPOINT",),
    "llm.api_version": ("OPENAI_API_VERSION",),
    "github.api_url": ("GITHUB_API_URL",),
    "ray.address": ("RAY_ADDRESS",),
    "prefect.api_url": ("PREFECT_API_URL",),
    "data_dir": ("AGENTCTL_DATA_DIR",),
}


def _url_password(url: str | None) -> list[str]:
    from urllib.parse import urlsplit

    password = urlsplit(url).password if url else None
    return [password] if password else []


def default_data_dir() -> Path:
    """Where agentctl keeps its state: ``$XDG_DATA_HOME/agentctl`` or ``~/.local/share/agentctl``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentctl"


def default_config_path() -> Path:
    """The user config file: ``$XDG_CONFIG_HOME/agentctl/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agentctl" / "config.toml"


# The layering below is hand-written on purpose: pydantic-settings (in the lock) did the same job
# ~75 ms slower on every command's first load (its import), read lower-case agentctl_* names too,
# and silently ignored AGENTCTL_<SECTION>__<KEY> with a misspelt section, which this names as an error.
def load(config_path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings: ``overrides`` (flags, dotted keys) > environment > file > defaults."""
    data = _read_file(_choose_file(config_path))
    for key, value in {**_from_env(), **(overrides or {})}.items():
        _set_dotted(data, key, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _choose_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if explicit.is_dir():
            raise ConfigError(f"config file {explicit} is a directory: give --config or AGENTCTL_CONFIG a file")
        if not explicit.exists():
            raise ConfigError(f"config file {explicit} does not exist: fix --config or AGENTCTL_CONFIG")
        return explicit
    from_env = os.environ.get("AGENTCTL_CONFIG")
    if from_env:
        return _choose_file(Path(from_env))
    default = default_config_path()
    return default if default.is_file() else None


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (line {line}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _from_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for key, names in ENV_ALIASES.items():
        for name in names:
            if os.environ.get(name):
                found[key] = os.environ[name]
    for name, value in os.environ.items():
        if name.startswith("AGENTCTL_") and "__" in name and value:
            found[name[len("AGENTCTL_") :].lower().replace("__", ".")] = value
    return found


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for depth, part in enumerate(parents, 1):
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"config key {'.'.join(parents[:depth])} must be a table to set {key}")
    data[leaf] = value


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown config key {key}: see config.example.toml for the keys there are"
    got = err.get("input")
    allowed = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return f"bad config value for {key}: {got!r}; expected {allowed}"
