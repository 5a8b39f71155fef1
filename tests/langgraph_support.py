"""A real LangGraph graph for the ingestion tests: no network, no hand-made events.

``build_graph()``: ``agent`` (LangChain's ``GenericFakeChatModel``, whose replies carry
``usage_metadata``; the first asks for the ``lookup`` tool) → the conditional edge
``route`` → ``tools`` (LangGraph's prebuilt ``ToolNode`` running the real ``@tool``) →
``agent`` again → END. ``build_graph(parallel=True)`` puts two nodes that run in one
superstep, ``plan`` and ``recall``, before ``agent``.

``EXPECTED_*`` are what any source (the adapter, OpenTelemetry) must show for one run.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

FIRST_USAGE = {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}
SECOND_USAGE = {"input_tokens": 30, "output_tokens": 9, "total_tokens": 39}
EXPECTED_NODES = ["agent", "tools", "agent"]
EXPECTED_PARALLEL_NODES = ["plan", "recall", "agent", "tools", "agent"]
EXPECTED_TOKENS = [20, 0, 39]
TOOL = "lookup_weather"
ANSWER = "It is sunny in Paris."
QUESTION = "What is the weather in Paris?"


@tool
def lookup_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[str], operator.add]


def build_graph(parallel: bool = False) -> Any:
    """A compiled graph with its own fake model (its replies are consumed by one run)."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": TOOL, "args": {"city": "Paris"}, "id": "call_1"}],
                    usage_metadata=FIRST_USAGE,  # type: ignore[arg-type]
                ),
                AIMessage(content=ANSWER, usage_metadata=SECOND_USAGE),  # type: ignore[arg-type]
            ]
        )
    )

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    def plan(state: State) -> dict[str, Any]:
        return {"notes": ["plan: look the weather up"]}

    def recall(state: State) -> dict[str, Any]:
        return {"notes": ["recall: the user is in Paris"]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([lookup_weather]))
    if parallel:
        graph.add_node("plan", plan)
        graph.add_node("recall", recall)
        graph.add_edge(START, "plan")
        graph.add_edge(START, "recall")
        graph.add_edge(["plan", "recall"], "agent")
    else:
        graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather_agent")


def graph_input() -> dict[str, Any]:
    return {"messages": [HumanMessage(QUESTION)], "notes": []}
