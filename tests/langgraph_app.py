"""The one real LangGraph app of the tests (issue 12): the same graph run through our
adapter (``dashflow_producer.langgraph``, tests/test_producer_langgraph.py and the
browser test), and instrumented by openinference-instrumentation-langchain or by
opentelemetry-instrumentation-langchain (tests/traces/test_otlp*.py). No network, no
hand-made events.

``build_graph()``: ``plan`` turns the question into the first message and writes a note,
``agent`` asks a chat model (LangChain's ``GenericFakeChatModel``, whose replies carry
``usage_metadata`` and ``tool_calls`` as a real provider's do; the first asks for the
tool), the conditional edge ``route`` (a function, not a node) sends a tool call to
``tools`` (LangGraph's prebuilt ``ToolNode`` running the real ``@tool``) and the final
answer to the end. A run executes plan → agent → tools → agent.
``build_graph(parallel=True)`` adds ``recall``, which runs beside ``plan`` in the first
superstep. ``build_graph(city="Atlantis")`` makes the tool raise ``LookupError`` inside
``tools``, which fails the run.

Run as a program (``python -m tests.langgraph_app --instrument openinference``) it is an
instrumented app as the README's recipe sets one up: OpenTelemetry's SDK with the OTLP
exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables, nothing of ours.
Each instrumentation patches LangChain for the whole process and cannot be switched
cleanly (opentelemetry-instrumentation-langchain traces nothing after a second
``instrument()``), so each instrumented run is a process of its own.

``EXPECTED`` (and ``EXPECTED_PARALLEL`` for the parallel graph) is what any faithful
ingestion of one run must show, whichever source it came from.
"""

from __future__ import annotations

import argparse
import operator
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

GRAPH_NAME = "weather_agent"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
TOOL = "lookup_weather"
PLAN_NOTE = "plan: look the weather up"
RECALL_NOTE = "recall: the user is in Paris"
FIRST_USAGE = {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}
SECOND_USAGE = {"input_tokens": 30, "output_tokens": 9, "total_tokens": 39}

EXPECTED: dict[str, Any] = {
    "nodes": ["plan", "agent", "tools", "agent"],
    "tokens": [0, 20, 0, 39],
    "tools": [[], [], [TOOL], []],
    "total_tokens": 59,
    "final_answer": ANSWER,
}
EXPECTED_PARALLEL: dict[str, Any] = {
    **EXPECTED,
    "nodes": ["plan", "recall", "agent", "tools", "agent"],
    "tokens": [0, 0, 20, 0, 39],
    "tools": [[], [], [], [TOOL], []],
}


@tool
def lookup_weather(city: str) -> str:
    """The weather in a city."""
    if city == "Atlantis":
        raise LookupError(f"no weather station in {city}")
    return f"sunny in {city}"


class State(TypedDict):
    question: str
    notes: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(parallel: bool = False, city: str = "Paris") -> Any:
    """A compiled graph with its own fake model (its replies are consumed by one run).
    ``parallel``: ``recall`` runs beside ``plan``; ``city``: the city the model asks the
    tool about (``"Atlantis"`` makes the tool raise)."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": TOOL, "args": {"city": city}, "id": "call-1"}],
                    usage_metadata=FIRST_USAGE,  # type: ignore[arg-type]
                ),
                AIMessage(content=ANSWER, usage_metadata=SECOND_USAGE),  # type: ignore[arg-type]
            ]
        )
    )

    def plan(state: State) -> dict[str, Any]:
        return {"notes": [PLAN_NOTE], "messages": [HumanMessage(content=state["question"])]}

    def recall(state: State) -> dict[str, Any]:
        return {"notes": [RECALL_NOTE]}

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("agent", agent)
    # A tool's exception fails the node (and the run) instead of going back to the model
    # as a message: the failing city is there to test that.
    graph.add_node("tools", ToolNode([lookup_weather], handle_tool_errors=False))
    graph.add_edge(START, "plan")
    if parallel:
        graph.add_node("recall", recall)
        graph.add_edge(START, "recall")
        graph.add_edge(["plan", "recall"], "agent")
    else:
        graph.add_edge("plan", "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name=GRAPH_NAME)


def graph_input() -> dict[str, Any]:
    """The input of one run: the question, no notes or messages yet."""
    return {"question": QUESTION, "notes": [], "messages": []}


def run_graph(thread_id: str = "thread-1", city: str = "Paris") -> dict[str, Any]:
    """One run of the app; its final state."""
    result: dict[str, Any] = build_graph(city=city).invoke(
        graph_input(), {"configurable": {"thread_id": thread_id}}
    )
    return result


@contextmanager
def instrumented(library: str, provider: Any) -> Iterator[None]:
    """LangChain instrumented by ``library`` (``"openinference"``:
    openinference-instrumentation-langchain, ``"openllmetry"``:
    opentelemetry-instrumentation-langchain) into ``provider`` for the block. Both patch
    LangChain globally, so only one may be on at a time."""
    if library == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        instrumentor: Any = LangChainInstrumentor()
    elif library == "openllmetry":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        instrumentor = LangchainInstrumentor()
    else:
        raise ValueError(library)
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instrument", choices=["openinference", "openllmetry"], required=True)
    parser.add_argument("--thread", default="thread-1")
    parser.add_argument("--city", default="Paris")
    parser.add_argument(
        "--dump",
        help="write the spans as one OTLP ExportTraceServiceRequest (protobuf) to this file "
        "instead of exporting them",
    )
    args = parser.parse_args(argv)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider()
    if args.dump:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
    elif os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(HttpSpanExporter()))
    with instrumented(args.instrument, provider):
        try:
            run_graph(thread_id=args.thread, city=args.city)
        except LookupError as exc:
            print(f"the graph raised {exc!r}")
    if args.dump:
        request = encode_spans(memory.get_finished_spans())
        Path(args.dump).write_bytes(request.SerializeToString())
    provider.shutdown()  # flushes the batch: every span is sent before the process ends


if __name__ == "__main__":
    main()
