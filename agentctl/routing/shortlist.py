"""Choosing which processes to offer the LLM when there are more than ``router.max_tools``.

Endpoints cap the number of tools per request (OpenAI: 128) and long tool lists cost tokens and
accuracy, so a large registry is narrowed to the processes whose names, descriptions and
parameters share the most informative words with the request (an IDF-weighted word overlap).
It is deterministic and local: no extra LLM call, no network.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from agentctl.processes.registry import Process

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    """Lower-case words of ``text``, split on ``_`` and ``-`` too, with a plural ``s`` dropped."""
    found = set()
    for word in _WORD.findall(text.lower().replace("_", " ")):
        found.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return found


def _document(process: Process) -> set[str]:
    schema = process.schema().get("properties", {})
    parts = [process.name, process.description, *schema, *(str(p.get("description", "")) for p in schema.values())]
    return words(" ".join(parts))


def shortlist(request: str, processes: list[Process], limit: int) -> list[Process]:
    """At most ``limit`` processes, the best matches for ``request`` first; ties keep registry order."""
    if len(processes) <= limit:
        return processes
    documents = [_document(p) for p in processes]
    frequency = Counter(word for document in documents for word in document)
    query = words(request)
    count = len(processes)

    def score(document: set[str]) -> float:
        return sum(math.log((count + 1) / (frequency[w] + 0.5)) for w in query & document)

    ranked = sorted(range(count), key=lambda i: (-score(documents[i]), i))
    return [processes[i] for i in ranked[:limit]]
