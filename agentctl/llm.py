"""The LLM client: one official ``openai`` async client per Python process (one per actor).

OpenAI, Azure OpenAI and any OpenAI-compatible server (Ollama, vLLM, llama.cpp) are reached through
the same ``chat()`` call; openai's errors are translated into agentctl's here and nowhere else.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from agentctl import runtime
from agentctl.config import LLMSettings, Settings
from agentctl.errors import LLMError, MissingCredential, UsageError, redact

_client: Any = None
_client_key: tuple[Any, ...] | None = None


def make_client(settings: Settings) -> Any:
    """A new AsyncOpenAI or AsyncAzureOpenAI client for ``settings``."""
    import openai

    llm = settings.llm
    key = settings.api_key(runtime.environ())
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


def client() -> Any:
    """The shared client of this process, built once from the installed settings."""
    global _client, _client_key
    import asyncio

    settings = runtime.settings()
    # A client's pooled connections belong to the event loop that opened them (asyncio.run per call).
    # A stack's actor serves callers with different keys: the cache key holds a digest, not the key.
    secret = hashlib.sha256(settings.api_key(runtime.environ()).encode()).hexdigest()
    key = (settings.llm.model_dump_json(), secret, id(asyncio.get_running_loop()))
    if _client is None or key != _client_key:
        _client, _client_key = make_client(settings), key
    return _client


@dataclass
class TokenCount:
    """Tokens and requests spent on the LLM for one request, nested calls included."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Any) -> None:
        """Count one completion."""
        self.requests += 1
        usage = getattr(completion, "usage", None)
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0

    def as_dict(self) -> dict[str, int]:
        """JSON-able counts, with the total."""
        return {**asdict(self), "total_tokens": self.prompt_tokens + self.completion_tokens}


# The usage record of the request being handled; Prefect copies it into the runs it starts.
current_usage: contextvars.ContextVar[TokenCount | None] = contextvars.ContextVar("agentctl_usage", default=None)
# A per-request model override (``--model``, ``eval --models``).
current_model: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentctl_model", default=None)


async def chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Any:
    """Send one chat completion and return the first choice's message."""
    completion = await complete(messages, tools)
    return completion.choices[0].message


async def complete(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
) -> Any:
    """Send one chat completion request and return the whole completion.

    Transport failures (connection, timeout, 429, 5xx) are retried by the openai client itself,
    ``llm.max_retries`` times, honouring ``retry-after``; nothing else here retries.
    """
    import openai

    llm = runtime.settings().llm
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    if response_format:
        extra["response_format"] = response_format
    model = current_model.get() or llm.model
    try:
        completion = await client().chat.completions.create(model=model, messages=messages, **extra)
    except openai.OpenAIError as exc:
        raise translate(exc, llm, model) from None
    except json.JSONDecodeError:  # the body of a 200 was not JSON
        completion = None
    _check(completion, llm)
    usage = current_usage.get()
    if usage is not None:
        usage.add(completion)
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


def translate(exc: Exception, llm: LLMSettings, model: str | None = None) -> Exception:
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
    if isinstance(exc, openai.BadRequestError) and "tool" in _short(exc).lower() and llm.mode == "tools":
        return UsageError(f'the LLM at {where} rejected tool calling ({_short(exc)}): set llm.mode = "json_schema"')
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"the LLM at {where} answered {exc.status_code}: {_short(exc)}")
    return LLMError(f"the LLM call failed: {type(exc).__name__}")


def _short(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            # A server may echo the key it was sent ("Incorrect API key provided: sk-...").
            return redact(str(message), runtime.secret_values())[:200]
    return type(exc).__name__
