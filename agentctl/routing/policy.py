"""The retry budget a run would have: Prefect's retries for the process, the LLM client's own.

Retries live in three places and do not multiply: the openai client retries transport failures
(``llm.max_retries``, honouring ``retry-after``); the router re-asks only for invalid answers
(``router.repair_attempts``), never for transport failures; Prefect retries a process's flow or
tasks as the process declares. Ray retries nothing: actor calls have ``max_task_retries=0``.
"""

from __future__ import annotations

from agentctl.config import Settings
from agentctl.events import LLMBudget, PrefectRetries, RetryPolicy
from agentctl.processes.registry import Process


def retry_policy(process: Process, settings: Settings) -> RetryPolicy:
    """What would retry, and how often, if ``process`` ran now."""
    llm = settings.llm
    retries = process.source.retries()
    return RetryPolicy(
        prefect=PrefectRetries(**retries["prefect"]),
        note=retries["note"],
        llm=LLMBudget(
            timeout=llm.timeout, max_retries=llm.max_retries, repair_attempts=settings.router.repair_attempts
        ),
        worst_case_routing_requests=(settings.router.repair_attempts + 1) * (llm.max_retries + 1),
    )
