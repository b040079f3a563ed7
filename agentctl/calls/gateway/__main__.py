"""``python -m agentctl.calls.gateway --port N``: the gateway ``agentctl up`` starts, its settings on stdin."""

from __future__ import annotations

import sys

from agentctl.calls.gateway.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
