"""agentctl: a plain-language front door to typed Prefect processes, routed by an LLM on Ray."""

__version__ = "0.1.0"
