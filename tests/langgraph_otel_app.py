"""One real LangGraph app for the tests that take runs from agent frameworks.

Run as a program (``python -m tests.langgraph_otel_app --instrument openinference``) it is
an instrumented app as the README's recipe sets one up: OpenTelemetry's SDK with the OTLP
exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables, nothing of ours.
Each instrumentation patches LangChain for the whole process and cannot be switched
cleanly (opentelemetry-instrumentation-langchain traces nothing after a second
``instrument()``), so each instrumented run is a process of its own.

Three nodes and a conditional edge: ``plan`` writes a plan, ``agent`` asks a chat model
(langchain_core's fake, so no network) which first calls the ``lookup`` tool, ``route``
(the conditional edge function, not a node) sends a tool call to ``tools`` and a final
answer to the end. A run executes plan → agent → tools → agent. The model's replies carry
``usage_metadata`` (tokens) and ``tool_calls``, as a real provider's do.

``EXPECTED`` is what any faithful ingestion of one run must show.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    question: str
    plan: str
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def lookup(city: str) -> str:
    """The weather in a city."""
    if city == "Atlantis":
        raise LookupError(f"no weather station in {city}")
    return f"sunny in {city}"


def build_graph(city: str = "Paris") -> Any:
    """A compiled graph with a fresh fake model (its replies are consumed per run). With
    ``city="Atlantis"`` the tool raises ``LookupError`` inside the ``tools`` node."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "lookup", "args": {"city": city}, "id": "call-1"}],
                    usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
                ),
                AIMessage(
                    content="It is sunny in Paris.",
                    usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27},
                ),
            ]
        )
    )

    def plan(state: State) -> dict[str, Any]:
        return {
            "plan": f"look up the weather for: {state['question']}",
            "messages": [HumanMessage(content=state["question"])],
        }

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def tools(state: State) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
        result = lookup.invoke(call["args"])
        return {"messages": [ToolMessage(content=result, tool_call_id=call["id"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def run_graph(thread_id: str = "thread-1", city: str = "Paris") -> dict[str, Any]:
    """One run of the app; its final state."""
    graph = build_graph(city)
    result: dict[str, Any] = graph.invoke(
        {"question": "weather in Paris?", "plan": "", "messages": []},
        {"configurable": {"thread_id": thread_id}},
    )
    return result


EXPECTED = {
    "nodes": ["plan", "agent", "tools", "agent"],
    "tokens": [0, 17, 0, 27],
    "tools": [[], [], ["lookup"], []],
    "total_tokens": 44,
    "final_answer": "It is sunny in Paris.",
}


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
