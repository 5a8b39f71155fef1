"""An agent that has nothing but dashflow-producer installed: it streams a small run (two
nodes, completed) and prints the outcome as JSON. tests/test_producer_package.py runs it
with a fresh virtualenv's ``python -I``, so nothing of the checkout is importable.

Usage: python -I standalone_agent.py <base_url> <api_key> <execution_id>
"""

import dataclasses
import json
import sys
from typing import Any

import dashflow_producer
from dashflow_producer import RunStreamer

NODES = [("planner", 120), ("writer", 300)]


def main(base_url: str, api_key: str, execution_id: str) -> int:
    stream = RunStreamer(base_url, api_key, execution_id)
    state: dict[str, Any] = {"question": "why is the sky blue?", "notes": []}
    stream.run_started(
        thread_id="standalone-1", metadata={"graph_name": "standalone"}, initial_state=state
    )
    for index, (node, tokens) in enumerate(NODES):
        before, state = state, {**state, "notes": [*state["notes"], node]}
        stream.node_started(node, index)
        stream.node_finished(
            {
                "node": node,
                "index": index,
                "duration_ms": 10 + index,
                "tokens_used": tokens,
                "state_before": before,
                "state_after": state,
                "tools_called": [],
                "success": True,
            }
        )
    stream.run_finished(completed=True, final_state=state)
    delivered = stream.close(timeout=30)
    outcome = {
        "delivered": delivered,
        "stats": dataclasses.asdict(stream.stats),
        "package": dashflow_producer.__file__,
    }
    print(json.dumps(outcome))
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
