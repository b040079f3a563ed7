"""The stack's gateway: one long-lived process of ``agentctl up`` that holds the Ray connection and
serves the stack over HTTP on 127.0.0.1 (``app``, ``callers``, ``server``; started as ``python -m
agentctl.calls.gateway``). ``wire`` is what goes over it: the requests' bodies and NDJSON events.

This package's ``__init__`` imports nothing: a client of the API must be able to stay free of Ray,
Prefect and openai.
"""
