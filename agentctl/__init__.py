"""agentctl: a plain-language front door to typed Prefect processes, routed by an LLM on Ray.

Declare your own processes with ``@agentctl.process``::

    from agentctl import process

    @process(description="Count open issues with a label")
    def count_issues(repo: str, label: str = "bug") -> int: ...
"""

from agentctl.processes.declare import process

__version__ = "0.1.0"
__all__ = ["__version__", "process"]
