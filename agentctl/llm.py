"""The LLM a request talks to: an explicit ``ChatModel`` (client, model name, usage counter).

OpenAI, Azure OpenAI and any OpenAI-compatible server (Ollama, vLLM, llama.cpp) are reached through
the same ``ChatModel.complete()``; openai's errors are translated into agentctl's here and nowhere
else. Whoever handles a request (a router actor, a dry run) makes one ``ChatModel`` for it and
passes it down; the openai clients it uses are cached by its holder in a ``Clients``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from agentctl.config import LLMSettings, Settings
from agentctl.errors import LLMError, MissingCredential, UsageError, redact
from agentctl.spending import Bounds
from agentctl.spending import TokenCount as TokenCount  # the request's counter, where it always was


def make_client(llm: LLMSettings, key: str) -> Any:
    """A new AsyncOpenAI or AsyncAzureOpenAI client for ``llm`` with API key ``key``."""
    import openai

    common: dict[str, Any] = {"api_key": key, "timeout": llm.timeout, "max_retries": llm.max_retries}
    if llm.provider == "azure":
        if not llm.azure_endpoint:
            raise MissingCredential("Azure OpenAI needs an endpoint: set AZURE_OPENAI_ENDPOINT or llm.azure_endpoint")
        return openai.AsyncAzureOpenAI(
            azure_endpoint=llm.azure_endpoint,
            azure_deployment=llm.azure_deployment or llm.model,
            api_version=llm.api_version or "2024-10-21",
            **common,
        )
    return openai.AsyncOpenAI(base_url=llm.base_url or None, **common)


class Clients:
    """The openai clients one holder (a router actor, a dry run) reuses across its requests."""

    LIMIT = 8  # distinct callers' settings and keys an actor keeps connections open for

    def __init__(self, make: Callable[[LLMSettings, str], Any] = make_client) -> None:
        self._make = make
        self._clients: dict[tuple[str, str, object], Any] = {}

    def get(self, llm: LLMSettings, key: str) -> Any:
        """The client for ``llm`` and ``key`` on the running event loop, made on first use."""
        import asyncio

        # A client's pooled connections belong to the event loop that opened them (asyncio.run per call).
        # The key holds the loop itself, not its id: a new loop can get a closed one's id.
        # A stack's actor serves callers with different keys: the cache key holds a digest, not the key.
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_key = (llm.model_dump_json(), digest, asyncio.get_running_loop())
        if cache_key not in self._clients:
            if len(self._clients) >= self.LIMIT:
                self._clients.pop(next(iter(self._clients)))
            self._clients[cache_key] = self._make(llm, key)
        return self._clients[cache_key]


class Model(Protocol):
    """What routing needs of a chat model: its LLM settings and one completion call."""

    llm: LLMSettings

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Any:
        """Send one chat completion request and return the whole completion."""


@dataclass
class ChatModel:
    """One model as one request uses it: where and how to ask, and what the request spent.

    Every call made with it, the router's and those of the process it runs, counts in ``usage``,
    priced with ``llm.prices`` for ``name``, and is refused once the request is at its ``usage.bounds``.
    """

    llm: LLMSettings
    key: Callable[[], str]  # read at the first call: a process that never asks needs no key
    clients: Clients
    name: str
    secrets: list[str] = field(default_factory=list)  # hidden from the server's error messages
    usage: TokenCount = field(default_factory=TokenCount)

    @classmethod
    def of(cls, settings: Settings, environ: Mapping[str, str], clients: Clients, name: str | None = None) -> ChatModel:
        """The model ``name`` (default ``llm.model``) of ``settings``, its key read from ``environ``."""
        return cls(
            llm=settings.llm,
            key=lambda: settings.api_key(environ),
            clients=clients,
            name=name or settings.llm.model,
            secrets=settings.secret_values(environ),
            usage=TokenCount(bounds=Bounds.of(settings.router)),
        )

    def using(self, name: str) -> ChatModel:
        """This request's model under another model name: its calls count, are priced and bounded with this one's."""
        return replace(self, name=name)

    async def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Any:
        """Send one chat completion and return the first choice's message."""
        completion = await self.complete(messages, tools)
        return completion.choices[0].message

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Any:
        """Send one chat completion request and return the whole completion.

        Transport failures (connection, timeout, 429, 5xx) are retried by the openai client itself,
        ``llm.max_retries`` times, honouring ``retry-after``; nothing else here retries. A request
        at its bounds is refused before the call is sent (``BudgetExceeded``).
        """
        import openai

        price = self.llm.prices.get(self.name)  # the model name as sent: what the provider bills
        self.usage.check(self.name, price)
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        if response_format:
            extra["response_format"] = response_format
        client = self.clients.get(self.llm, self.key())
        try:
            completion = await client.chat.completions.create(model=self.name, messages=messages, **extra)
        except openai.OpenAIError as exc:
            raise translate(exc, self.llm, self.name, self.secrets) from None
        except json.JSONDecodeError:  # the body of a 200 was not JSON
            completion = None
        _check(completion, self.llm)
        self.usage.add(completion, self.name, price)
        return completion


def _check(completion: Any, llm: LLMSettings) -> None:
    """Refuse a 200 that is no chat completion: openai hands back a proxy's or portal's page as is."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        raise LLMError(
            f"the LLM at {endpoint(llm)} answered 200 with no chat completion: check llm.base_url / OPENAI_BASE_URL"
        )
    if not choices:
        raise LLMError(f"the LLM at {endpoint(llm)} answered with no choices")


def endpoint(llm: LLMSettings) -> str:
    """Where requests go, for messages."""
    if llm.provider == "azure":
        return llm.azure_endpoint or "Azure OpenAI"
    return llm.base_url or "https://api.openai.com/v1"


def translate(
    exc: Exception, llm: LLMSettings, model: str | None = None, secrets: list[str] | None = None
) -> Exception:
    """An agentctl error for an openai error, naming the endpoint and the fix."""
    import openai

    where = endpoint(llm)
    model = model or llm.model
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(
            f"the LLM at {where} did not answer within {llm.timeout:g} s "
            f"({llm.max_retries + 1} tries; llm.timeout, llm.max_retries)"
        )
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"could not reach the LLM at {where}: check llm.base_url / OPENAI_BASE_URL")
    if isinstance(exc, openai.AuthenticationError):
        return UsageError(f"the LLM at {where} rejected the API key (401): check {llm.key_env()}")
    if isinstance(exc, openai.NotFoundError):
        return UsageError(f"the LLM at {where} does not know model {model!r} (404): check llm.model / --model")
    if isinstance(exc, openai.RateLimitError):
        return LLMError(
            f"the LLM at {where} is still rate limiting (429) after {llm.max_retries} retries "
            "(llm.max_retries); try again later"
        )
    if isinstance(exc, openai.BadRequestError) and "tool" in _short(exc, secrets).lower() and llm.mode == "tools":
        return UsageError(
            f'the LLM at {where} rejected tool calling ({_short(exc, secrets)}): set llm.mode = "json_schema"'
        )
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the LLM at {where} answered {exc.status_code}: {_short(exc, secrets)}")
    return LLMError(f"the LLM call failed: {type(exc).__name__}")


def _short(exc: Any, secrets: list[str] | None) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            # A server may echo the key it was sent ("Incorrect API key provided: sk-...").
            return redact(str(message), secrets or [])[:200]
    return type(exc).__name__
