"""DashFlow's canonical ``ExecutionTrace`` (ADR-0001), the only definition of a trace's shape.

The JSON form is the one DashFlow's Rust ``ExecutionTrace::to_json()`` writes: fields in
the same order, ``parent_execution_id`` / ``root_execution_id`` / ``depth`` /
``execution_metrics`` / ``performance_metrics`` omitted when absent, nulls kept, integers
exact at any size. Parsing validates types as it decodes (msgspec), so a bad document is
refused with the JSON path of the first bad value before anything is stored.

Unknown fields are ignored on input, as DashFlow's own serde deserializer does, so a newer
producer can still send to an older server.

The type carries DashFlow's analysis methods on its own fields (``slowest_node``,
``time_breakdown``, ...), and nothing that encodes it for a consumer: the export formats
(``formats.py``, ``dashstream.py``) are functions taking a trace, and import this module,
never the other way round.

One module past ~400 lines on purpose: it is the one definition of a trace's shape, with
the checks its fields carry (u64 bounds, storage widths, NUL), and the live event
payloads declared with the same constrained field types; split, those types would be
declared twice.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from .errors import InputError

__all__ = [
    "NOT_UTF8",
    "NUL_RULE",
    "UNSET",
    "Duration",
    "ErrorTrace",
    "ExecutionMetrics",
    "ExecutionTrace",
    "NodeExecution",
    "NodeStarted",
    "PerformanceMetrics",
    "RunFinished",
    "RunStarted",
    "UnsetType",
    "canonical_json",
    "convert",
    "refuse_nul",
    "refuse_nul_in",
    "state_hash",
    "state_value",
]

_T = TypeVar("_T")
_encode = msgspec.json.Encoder().encode


def _same(value: _T) -> _T:
    return value


U64_MAX = 2**64 - 1

# u64 in DashFlow. msgspec cannot bound an int above int64 in a Meta, so the upper
# bound is checked in __post_init__ (see _check_u64).
U64 = Annotated[int, msgspec.Meta(ge=0)]
Nanos = Annotated[int, msgspec.Meta(ge=0, le=999_999_999)]


# Storage limits on identifiers and timestamps (columns of that width; PostgreSQL refuses
# longer values), checked here so a long one is a 400 naming its path, not a 500.
Name = Annotated[str, msgspec.Meta(max_length=200)]
Stamp = Annotated[str, msgspec.Meta(max_length=64)]

_U64_RULE = "expected an unsigned 64-bit integer"


def _check_u64(obj: msgspec.Struct, *fields: str) -> None:
    for name in fields:
        value = getattr(obj, name)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, int) and item > U64_MAX:
                    raise ValueError(f"{name}.{key}: {_U64_RULE}, got {_digits(item)}")
        elif isinstance(value, int) and value > U64_MAX:
            raise ValueError(f"{name}: {_U64_RULE}, got {_digits(value)}")


def _digits(value: int) -> str:
    # A JSON integer may have any number of digits: the message shows a bounded part.
    text = str(value)
    return text if len(text) <= 30 else f"{text[:20]}... ({len(text)} digits)"


class Duration(msgspec.Struct, kw_only=True):
    """Rust's ``std::time::Duration`` as serde writes it."""

    secs: U64
    nanos: Nanos

    def __post_init__(self) -> None:
        _check_u64(self, "secs")

    @property
    def total_ms(self) -> float:
        return self.secs * 1000 + self.nanos / 1_000_000


class ExecutionMetrics(msgspec.Struct, kw_only=True):
    """The executor's metrics payload, present in auto-persisted traces."""

    node_durations: dict[str, Duration] = {}
    node_execution_counts: dict[str, U64] = {}
    node_timestamps: dict[str, Any] = {}
    total_duration: Duration = msgspec.field(default_factory=lambda: Duration(secs=0, nanos=0))
    checkpoint_count: U64 = 0
    checkpoint_loads: U64 = 0
    state_size_bytes: U64 | None = None
    edges_traversed: U64 = 0
    conditional_branches: U64 = 0
    parallel_executions: U64 = 0
    peak_concurrency: U64 = 0
    events_emitted: U64 = 0
    node_tokens: dict[str, U64] = {}
    total_tokens: U64 = 0

    def __post_init__(self) -> None:
        _check_u64(
            self,
            "node_execution_counts",
            "checkpoint_count",
            "checkpoint_loads",
            "state_size_bytes",
            "edges_traversed",
            "conditional_branches",
            "parallel_executions",
            "peak_concurrency",
            "events_emitted",
            "node_tokens",
            "total_tokens",
        )


class PerformanceMetrics(msgspec.Struct, kw_only=True):
    """A point-in-time performance snapshot attached to a trace."""

    current_latency_ms: float = 0.0
    average_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    p99_latency_ms: float = 0.0
    tokens_per_second: float = 0.0
    error_rate: float = 0.0
    memory_usage_mb: float = 0.0
    cpu_usage_percent: float = 0.0
    sample_count: U64 = 0
    sample_window_secs: float = 0.0
    timestamp: str | None = None
    thread_id: str | None = None
    custom: dict[str, Any] = {}

    def __post_init__(self) -> None:
        _check_u64(self, "sample_count")


class NodeExecution(msgspec.Struct, kw_only=True):
    """One execution of one node. A node that runs in a loop has one of these per visit."""

    node: Name
    duration_ms: U64
    tokens_used: U64 = 0
    state_before: Any = None
    state_after: Any = None
    tools_called: list[str] = []
    success: bool = True
    error_message: str | None = None
    # Absent on input means "its position in nodes_executed" (set by ExecutionTrace).
    index: U64 | UnsetType = UNSET
    started_at: Stamp | None = None
    metadata: dict[str, Any] = {}

    def __post_init__(self) -> None:
        # Every step parsed or loaded comes here: the usual case, plain ints in range, is
        # settled in one expression; anything else gets the full check.
        duration, tokens, index = self.duration_ms, self.tokens_used, self.index
        if (
            type(duration) is int
            and type(tokens) is int
            and type(index) is int
            and duration <= U64_MAX
            and tokens <= U64_MAX
            and index <= U64_MAX
        ):
            return
        _check_u64(self, "duration_ms", "tokens_used", "index")


class ErrorTrace(msgspec.Struct, kw_only=True):
    """An error raised during a run, with the state at the moment it happened."""

    node: Name
    message: str
    error_type: Name | None = None
    state_at_error: Any = None
    timestamp: Stamp | None = None
    execution_index: U64 | None = None
    recoverable: bool = False
    retry_attempted: bool = False
    context: str | None = None
    metadata: dict[str, Any] = {}

    def __post_init__(self) -> None:
        _check_u64(self, "execution_index")


class ExecutionTrace(msgspec.Struct, kw_only=True):
    """A whole run: every node execution in order, errors, totals and the final state."""

    thread_id: Name | None = None
    execution_id: Name | None = None
    parent_execution_id: Name | UnsetType = UNSET
    root_execution_id: Name | UnsetType = UNSET
    depth: U64 | UnsetType = UNSET
    nodes_executed: list[NodeExecution]
    total_duration_ms: U64 = 0
    total_tokens: U64 = 0
    errors: list[ErrorTrace] = []
    completed: bool = False
    started_at: Stamp | None = None
    ended_at: Stamp | None = None
    final_state: Any = None
    metadata: dict[str, Any] = {}
    execution_metrics: ExecutionMetrics | UnsetType = UNSET
    performance_metrics: PerformanceMetrics | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_u64(self, "total_duration_ms", "total_tokens", "depth")
        # The execution id is a URL path segment (/api/v1/runs/<execution_id>).
        if self.execution_id is not None and (not self.execution_id or "/" in self.execution_id):
            raise ValueError(
                f"execution_id: expected a non-empty id without '/', got {self.execution_id!r}"
            )
        for position, node in enumerate(self.nodes_executed):
            if node.index is UNSET:
                node.index = position

    # -- JSON ------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes | bytearray | str) -> ExecutionTrace:
        """Parse DashFlow JSON. Raises ``InputError`` naming the path and the rule."""
        # A 2,000-step trace allocates ~70k lists and dicts while decoding: ~100 young
        # collections, and usually a full one (~0.1 s in a server process), none of which
        # can free anything, since decoded JSON holds no reference cycles. So the collector
        # waits until the trace is built.
        collecting = gc.isenabled()
        gc.disable()
        try:
            trace: ExecutionTrace = msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise InputError.from_validation(exc, data) from None
        except msgspec.DecodeError as exc:
            raise InputError("$", f"malformed JSON: {exc}") from None
        except UnicodeDecodeError:
            raise InputError("$", NOT_UTF8) from None
        except RecursionError:
            raise InputError("$", "nesting is too deep") from None
        finally:
            if collecting:
                gc.enable()
        # JSON can only carry NUL escaped, so the scan runs only when the text has one.
        raw = data.encode() if isinstance(data, str) else data
        if b"\\u0000" in raw:
            trace.refuse_nul()
        return trace

    @classmethod
    def from_obj(cls, obj: Any, path: str = "$") -> ExecutionTrace:
        """Build from already-decoded JSON (a dict), with the same validation."""
        trace: ExecutionTrace = convert(obj, cls, path)
        trace.refuse_nul(path)
        return trace

    def refuse_nul(self, prefix: str = "$") -> None:
        """Refuse NUL characters outside states: PostgreSQL text and jsonb cannot hold
        them (states are stored as compressed bytes and may)."""
        for i, n in enumerate(self.nodes_executed):
            refuse_nul(f"{prefix}.nodes_executed[{i}]", n)
        for i, e in enumerate(self.errors):
            refuse_nul(f"{prefix}.errors[{i}]", e)
        _no_nul(prefix, self, {"nodes_executed", "errors", *_STATE_FIELDS})

    def to_json(self) -> bytes:
        """Compact JSON, fields in DashFlow's order."""
        return msgspec.json.encode(self)

    def to_json_pieces(
        self,
        node: Callable[[NodeExecution], NodeExecution] = _same,
        error: Callable[[ErrorTrace], ErrorTrace] = _same,
        **fields: Any,
    ) -> Iterator[bytes]:
        """``to_json()`` a piece at a time (the fields before ``nodes_executed``, each
        step, the fields between, each error, the rest), so a large trace's JSON is never
        built whole; joined, the same bytes (msgspec writes a list as its elements'
        encodings between commas). ``node`` / ``error`` replace each element before it is
        encoded and ``fields`` fields of the trace itself (a state decoded)."""
        outline = msgspec.structs.replace(self, nodes_executed=[], errors=[], **fields)
        # Compact JSON escapes every quote inside a string, so these keys (the first two
        # fields holding lists) are found at their own place, whatever the strings hold.
        head, rest = outline.to_json().split(b'"nodes_executed":[]', 1)
        middle, tail = rest.split(b'"errors":[]', 1)
        yield head + b'"nodes_executed":['
        for i, n in enumerate(self.nodes_executed):
            yield (b"," if i else b"") + _encode(node(n))
        yield b"]" + middle + b'"errors":['
        for i, e in enumerate(self.errors):
            yield (b"," if i else b"") + _encode(error(e))
        yield b"]" + tail

    # -- analysis (DashFlow's semantics) ---------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self.nodes_executed)

    @property
    def error_count(self) -> int:
        return len(self.errors)

    def has_errors(self) -> bool:
        return bool(self.errors)

    def is_successful(self) -> bool:
        """Completed and no errors."""
        return self.completed and not self.errors

    def slowest_node(self) -> NodeExecution | None:
        """The execution with the largest duration (the last one on a tie, as Rust's
        ``Iterator::max_by_key``)."""
        best: NodeExecution | None = None
        for node in self.nodes_executed:
            if best is None or node.duration_ms >= best.duration_ms:
                best = node
        return best

    def most_expensive_node(self) -> NodeExecution | None:
        """The execution that used the most tokens (the last one on a tie)."""
        best: NodeExecution | None = None
        for node in self.nodes_executed:
            if best is None or node.tokens_used >= best.tokens_used:
                best = node
        return best

    def get_node_execution(self, node: str) -> NodeExecution | None:
        """The first execution of ``node``."""
        return next((n for n in self.nodes_executed if n.node == node), None)

    def get_all_node_executions(self, node: str) -> list[NodeExecution]:
        return [n for n in self.nodes_executed if n.node == node]

    def node_execution_count(self, node: str) -> int:
        return sum(1 for n in self.nodes_executed if n.node == node)

    def total_time_in_node(self, node: str) -> int:
        return sum(n.duration_ms for n in self.nodes_executed if n.node == node)

    def total_tokens_in_node(self, node: str) -> int:
        return sum(n.tokens_used for n in self.nodes_executed if n.node == node)

    def errors_for_node(self, node: str) -> list[ErrorTrace]:
        return [e for e in self.errors if e.node == node]

    def unique_nodes(self) -> list[str]:
        """Node names in the order they first ran."""
        return list(dict.fromkeys(n.node for n in self.nodes_executed))

    def average_node_duration_ms(self) -> float:
        if not self.nodes_executed:
            return 0.0
        return sum(n.duration_ms for n in self.nodes_executed) / len(self.nodes_executed)

    def time_breakdown(self) -> dict[str, float]:
        """Percent of ``total_duration_ms`` spent in each node; empty when the total is 0."""
        return self._breakdown(self.total_duration_ms, "duration_ms")

    def token_breakdown(self) -> dict[str, float]:
        """Percent of ``total_tokens`` used by each node; empty when the total is 0."""
        return self._breakdown(self.total_tokens, "tokens_used")

    def _breakdown(self, total: int, attr: str) -> dict[str, float]:
        if total == 0:
            return {}
        sums: dict[str, int] = {}
        for n in self.nodes_executed:
            sums[n.node] = sums.get(n.node, 0) + getattr(n, attr)
        return {name: value / total * 100.0 for name, value in sums.items()}


# The live form of a trace (traces/live.py): the parts of an ExecutionTrace a producer
# sends while the run executes. node_finished carries a NodeExecution and error an
# ErrorTrace; these three carry the rest, with the same field types.


class RunStarted(msgspec.Struct, kw_only=True):
    """``run_started``: the trace's top-level fields known at the start."""

    thread_id: Name | None = None
    parent_execution_id: Name | None = None
    root_execution_id: Name | None = None
    depth: U64 | None = None
    started_at: Stamp | None = None
    metadata: dict[str, Any] = {}
    initial_state: Any = None

    def __post_init__(self) -> None:
        _check_u64(self, "depth")


class NodeStarted(msgspec.Struct, kw_only=True):
    """``node_started``: a node began (its NodeExecution comes when it finishes)."""

    node: Name
    index: U64
    started_at: Stamp | None = None

    def __post_init__(self) -> None:
        _check_u64(self, "index")


class RunFinished(msgspec.Struct, kw_only=True):
    """``run_finished``: the trace's closing fields."""

    completed: bool
    ended_at: Stamp | None = None
    final_state: Any = None
    # Absent: keep what the node_finished events added up.
    total_duration_ms: U64 | None = None
    total_tokens: U64 | None = None

    def __post_init__(self) -> None:
        _check_u64(self, "total_duration_ms", "total_tokens")


def canonical_json(value: Any) -> bytes:
    """Keys sorted, compact, UTF-8: the form DashFlow hashes for ``state_hash``."""
    return msgspec.json.encode(value, order="sorted")


def state_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a state."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def state_value(state: Any) -> Any:
    """A state as Python values: a trace parsed from a body (``parsing.parse_trace``)
    holds each state as its undecoded JSON (``msgspec.Raw``), decoded here when needed,
    one at a time; any other state is returned as it is."""
    return msgspec.json.decode(state) if isinstance(state, msgspec.Raw) else state


def convert(obj: Any, type_: type[Any], path: str = "$") -> Any:
    """Validate already-decoded JSON against one of the types above."""
    try:
        return msgspec.convert(obj, type=type_)
    except msgspec.ValidationError as exc:
        raise InputError.from_validation(exc, obj, prefix=path) from None


NOT_UTF8 = "is not valid UTF-8 (JSON text must be UTF-8)"


# The states each live event's data carries, by event type (the other types carry none):
# stored as snapshots (traces/live.py), captured (traces/capture.py), kept out of the NUL
# rule below.
EVENT_STATE_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("initial_state",),
    "node_finished": ("state_before", "state_after"),
    "error": ("state_at_error",),
    "run_finished": ("final_state",),
}
_STATE_FIELDS = {name for names in EVENT_STATE_FIELDS.values() for name in names}


def refuse_nul(path: str, payload: msgspec.Struct) -> None:
    """Refuse a NUL character anywhere in one parsed payload (a step, an error, a live
    event's data) but in its states, naming the field's path."""
    _no_nul(path, payload, _STATE_FIELDS)


def _no_nul(path: str, struct: msgspec.Struct, skip: set[str]) -> None:
    for name in struct.__struct_fields__:
        if name not in skip:
            refuse_nul_in(f"{path}.{name}", getattr(struct, name))


NUL_RULE = "contains a NUL character (\\u0000)"
_NUL_IN_TRACE = f"{NUL_RULE}, allowed only in states"


def refuse_nul_in(path: str, value: Any, rule: str = _NUL_IN_TRACE) -> None:
    """Refuse a NUL character in any string or key of decoded JSON (or a payload),
    naming the path of the first one."""
    if isinstance(value, (dict, list, msgspec.Struct)):
        # One encoding in C says whether there is any (the encoder writes NUL as \u0000);
        # only then is the value walked, for the path. A string holding a backslash and
        # "u0000" also matches; the walk then finds nothing.
        try:
            if b"\\u0000" not in _encode(value):
                return
        except (TypeError, msgspec.EncodeError):
            pass  # not JSON-encodable as it is: walk it
    _walk_nul(path, value, rule)


def _walk_nul(path: str, value: Any, rule: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError(path, rule)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_nul(f"{path}.{key}", key, rule)
            _walk_nul(f"{path}.{key}", item, rule)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_nul(f"{path}[{i}]", item, rule)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _walk_nul(f"{path}.{name}", getattr(value, name), rule)
