"""The stack's gateway: one long-lived process of ``agentctl up`` that holds the Ray connection and
serves the stack over HTTP on 127.0.0.1 (``app``, ``callers``; started as ``python -m
agentctl.calls.gateway``), and the CLI's client of it (``client``). ``wire`` is what both send.

This package's ``__init__`` imports nothing: the client's process must stay free of Ray, Prefect and
openai.
"""
