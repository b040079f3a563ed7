"""``agentctl mcp serve``: agentctl's processes, and ``ask``, as the tools of an MCP server.

``tools`` says what a client sees (the tool list, a call's result), ``job`` carries one call's
events from the session's blocking stream to the server's event loop, ``server`` answers the
protocol (calls, approval through elicitation, cancellation) and ``serve`` runs it over stdio or
streamable HTTP. The ``mcp`` SDK is imported here only, never by ``--help`` or ``processes list``.
"""
