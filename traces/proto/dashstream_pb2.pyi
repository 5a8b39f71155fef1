# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    MESSAGE_TYPE_EVENT: _ClassVar[MessageType]
    MESSAGE_TYPE_STATE_DIFF: _ClassVar[MessageType]
    MESSAGE_TYPE_TOKEN_CHUNK: _ClassVar[MessageType]
    MESSAGE_TYPE_TOOL_EXECUTION: _ClassVar[MessageType]
    MESSAGE_TYPE_CHECKPOINT: _ClassVar[MessageType]
    MESSAGE_TYPE_METRICS: _ClassVar[MessageType]
    MESSAGE_TYPE_ERROR: _ClassVar[MessageType]
    MESSAGE_TYPE_EVENT_BATCH: _ClassVar[MessageType]
    MESSAGE_TYPE_EXECUTION_TRACE: _ClassVar[MessageType]

class CompressionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPRESSION_NONE: _ClassVar[CompressionType]
    COMPRESSION_ZSTD: _ClassVar[CompressionType]
    COMPRESSION_LZ4: _ClassVar[CompressionType]
    COMPRESSION_SNAPPY: _ClassVar[CompressionType]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_GRAPH_START: _ClassVar[EventType]
    EVENT_TYPE_GRAPH_END: _ClassVar[EventType]
    EVENT_TYPE_GRAPH_ERROR: _ClassVar[EventType]
    EVENT_TYPE_NODE_START: _ClassVar[EventType]
    EVENT_TYPE_NODE_END: _ClassVar[EventType]
    EVENT_TYPE_NODE_ERROR: _ClassVar[EventType]
    EVENT_TYPE_EDGE_TRAVERSAL: _ClassVar[EventType]
    EVENT_TYPE_CONDITIONAL_BRANCH: _ClassVar[EventType]
    EVENT_TYPE_PARALLEL_START: _ClassVar[EventType]
    EVENT_TYPE_PARALLEL_END: _ClassVar[EventType]
    EVENT_TYPE_LLM_START: _ClassVar[EventType]
    EVENT_TYPE_LLM_END: _ClassVar[EventType]
    EVENT_TYPE_LLM_ERROR: _ClassVar[EventType]
    EVENT_TYPE_LLM_RETRY: _ClassVar[EventType]
    EVENT_TYPE_TOOL_START: _ClassVar[EventType]
    EVENT_TYPE_TOOL_END: _ClassVar[EventType]
    EVENT_TYPE_TOOL_ERROR: _ClassVar[EventType]
    EVENT_TYPE_CHECKPOINT_SAVE: _ClassVar[EventType]
    EVENT_TYPE_CHECKPOINT_LOAD: _ClassVar[EventType]
    EVENT_TYPE_CHECKPOINT_DELETE: _ClassVar[EventType]
    EVENT_TYPE_MEMORY_SAVE: _ClassVar[EventType]
    EVENT_TYPE_MEMORY_LOAD: _ClassVar[EventType]
    EVENT_TYPE_HUMAN_INTERRUPT: _ClassVar[EventType]
    EVENT_TYPE_HUMAN_RESUME: _ClassVar[EventType]
    EVENT_TYPE_NODE_PROGRESS: _ClassVar[EventType]
    EVENT_TYPE_NODE_THINKING: _ClassVar[EventType]
    EVENT_TYPE_NODE_SUBSTEP: _ClassVar[EventType]
    EVENT_TYPE_NODE_WARNING: _ClassVar[EventType]
    EVENT_TYPE_OPTIMIZATION_START: _ClassVar[EventType]
    EVENT_TYPE_OPTIMIZATION_END: _ClassVar[EventType]
MESSAGE_TYPE_UNSPECIFIED: MessageType
MESSAGE_TYPE_EVENT: MessageType
MESSAGE_TYPE_STATE_DIFF: MessageType
MESSAGE_TYPE_TOKEN_CHUNK: MessageType
MESSAGE_TYPE_TOOL_EXECUTION: MessageType
MESSAGE_TYPE_CHECKPOINT: MessageType
MESSAGE_TYPE_METRICS: MessageType
MESSAGE_TYPE_ERROR: MessageType
MESSAGE_TYPE_EVENT_BATCH: MessageType
MESSAGE_TYPE_EXECUTION_TRACE: MessageType
COMPRESSION_NONE: CompressionType
COMPRESSION_ZSTD: CompressionType
COMPRESSION_LZ4: CompressionType
COMPRESSION_SNAPPY: CompressionType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_GRAPH_START: EventType
EVENT_TYPE_GRAPH_END: EventType
EVENT_TYPE_GRAPH_ERROR: EventType
EVENT_TYPE_NODE_START: EventType
EVENT_TYPE_NODE_END: EventType
EVENT_TYPE_NODE_ERROR: EventType
EVENT_TYPE_EDGE_TRAVERSAL: EventType
EVENT_TYPE_CONDITIONAL_BRANCH: EventType
EVENT_TYPE_PARALLEL_START: EventType
EVENT_TYPE_PARALLEL_END: EventType
EVENT_TYPE_LLM_START: EventType
EVENT_TYPE_LLM_END: EventType
EVENT_TYPE_LLM_ERROR: EventType
EVENT_TYPE_LLM_RETRY: EventType
EVENT_TYPE_TOOL_START: EventType
EVENT_TYPE_TOOL_END: EventType
EVENT_TYPE_TOOL_ERROR: EventType
EVENT_TYPE_CHECKPOINT_SAVE: EventType
EVENT_TYPE_CHECKPOINT_LOAD: EventType
EVENT_TYPE_CHECKPOINT_DELETE: EventType
EVENT_TYPE_MEMORY_SAVE: EventType
EVENT_TYPE_MEMORY_LOAD: EventType
EVENT_TYPE_HUMAN_INTERRUPT: EventType
EVENT_TYPE_HUMAN_RESUME: EventType
EVENT_TYPE_NODE_PROGRESS: EventType
EVENT_TYPE_NODE_THINKING: EventType
EVENT_TYPE_NODE_SUBSTEP: EventType
EVENT_TYPE_NODE_WARNING: EventType
EVENT_TYPE_OPTIMIZATION_START: EventType
EVENT_TYPE_OPTIMIZATION_END: EventType

class DashStreamMessage(_message.Message):
    __slots__ = ("event", "state_diff", "token_chunk", "tool_execution", "checkpoint", "metrics", "error", "event_batch", "execution_trace")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATE_DIFF_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOOL_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENT_BATCH_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TRACE_FIELD_NUMBER: _ClassVar[int]
    event: Event
    state_diff: StateDiff
    token_chunk: TokenChunk
    tool_execution: ToolExecution
    checkpoint: Checkpoint
    metrics: Metrics
    error: Error
    event_batch: EventBatch
    execution_trace: ExecutionTrace
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., state_diff: _Optional[_Union[StateDiff, _Mapping]] = ..., token_chunk: _Optional[_Union[TokenChunk, _Mapping]] = ..., tool_execution: _Optional[_Union[ToolExecution, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., event_batch: _Optional[_Union[EventBatch, _Mapping]] = ..., execution_trace: _Optional[_Union[ExecutionTrace, _Mapping]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("message_id", "timestamp_us", "tenant_id", "thread_id", "sequence", "type", "parent_id", "compression", "schema_version")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    message_id: bytes
    timestamp_us: int
    tenant_id: str
    thread_id: str
    sequence: int
    type: MessageType
    parent_id: bytes
    compression: CompressionType
    schema_version: int
    def __init__(self, message_id: _Optional[bytes] = ..., timestamp_us: _Optional[int] = ..., tenant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., sequence: _Optional[int] = ..., type: _Optional[_Union[MessageType, str]] = ..., parent_id: _Optional[bytes] = ..., compression: _Optional[_Union[CompressionType, str]] = ..., schema_version: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("header", "event_type", "node_id", "attributes", "duration_us", "llm_request_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    LLM_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    header: Header
    event_type: EventType
    node_id: str
    attributes: _containers.MessageMap[str, AttributeValue]
    duration_us: int
    llm_request_id: str
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., event_type: _Optional[_Union[EventType, str]] = ..., node_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ..., duration_us: _Optional[int] = ..., llm_request_id: _Optional[str] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("header", "events")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    header: Header
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class StateDiff(_message.Message):
    __slots__ = ("header", "base_checkpoint_id", "operations", "state_hash", "full_state")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BASE_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    FULL_STATE_FIELD_NUMBER: _ClassVar[int]
    header: Header
    base_checkpoint_id: bytes
    operations: _containers.RepeatedCompositeFieldContainer[DiffOperation]
    state_hash: bytes
    full_state: bytes
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., base_checkpoint_id: _Optional[bytes] = ..., operations: _Optional[_Iterable[_Union[DiffOperation, _Mapping]]] = ..., state_hash: _Optional[bytes] = ..., full_state: _Optional[bytes] = ...) -> None: ...

class DiffOperation(_message.Message):
    __slots__ = ("op", "path", "value", "encoding")
    class OpType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OP_TYPE_ADD: _ClassVar[DiffOperation.OpType]
        OP_TYPE_REMOVE: _ClassVar[DiffOperation.OpType]
        OP_TYPE_REPLACE: _ClassVar[DiffOperation.OpType]
        OP_TYPE_MOVE: _ClassVar[DiffOperation.OpType]
        OP_TYPE_COPY: _ClassVar[DiffOperation.OpType]
        OP_TYPE_TEST: _ClassVar[DiffOperation.OpType]
    OP_TYPE_ADD: DiffOperation.OpType
    OP_TYPE_REMOVE: DiffOperation.OpType
    OP_TYPE_REPLACE: DiffOperation.OpType
    OP_TYPE_MOVE: DiffOperation.OpType
    OP_TYPE_COPY: DiffOperation.OpType
    OP_TYPE_TEST: DiffOperation.OpType
    class ValueEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_ENCODING_JSON: _ClassVar[DiffOperation.ValueEncoding]
        VALUE_ENCODING_MSGPACK: _ClassVar[DiffOperation.ValueEncoding]
        VALUE_ENCODING_PROTOBUF: _ClassVar[DiffOperation.ValueEncoding]
        VALUE_ENCODING_RAW: _ClassVar[DiffOperation.ValueEncoding]
    VALUE_ENCODING_JSON: DiffOperation.ValueEncoding
    VALUE_ENCODING_MSGPACK: DiffOperation.ValueEncoding
    VALUE_ENCODING_PROTOBUF: DiffOperation.ValueEncoding
    VALUE_ENCODING_RAW: DiffOperation.ValueEncoding
    OP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    op: DiffOperation.OpType
    path: str
    value: bytes
    encoding: DiffOperation.ValueEncoding
    def __init__(self, op: _Optional[_Union[DiffOperation.OpType, str]] = ..., path: _Optional[str] = ..., value: _Optional[bytes] = ..., encoding: _Optional[_Union[DiffOperation.ValueEncoding, str]] = ..., **kwargs) -> None: ...

class TokenChunk(_message.Message):
    __slots__ = ("header", "request_id", "text", "token_ids", "logprobs", "chunk_index", "is_final", "finish_reason", "model", "stats")
    class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FINISH_REASON_NONE: _ClassVar[TokenChunk.FinishReason]
        FINISH_REASON_STOP: _ClassVar[TokenChunk.FinishReason]
        FINISH_REASON_LENGTH: _ClassVar[TokenChunk.FinishReason]
        FINISH_REASON_CONTENT_FILTER: _ClassVar[TokenChunk.FinishReason]
        FINISH_REASON_TOOL_CALLS: _ClassVar[TokenChunk.FinishReason]
        FINISH_REASON_ERROR: _ClassVar[TokenChunk.FinishReason]
    FINISH_REASON_NONE: TokenChunk.FinishReason
    FINISH_REASON_STOP: TokenChunk.FinishReason
    FINISH_REASON_LENGTH: TokenChunk.FinishReason
    FINISH_REASON_CONTENT_FILTER: TokenChunk.FinishReason
    FINISH_REASON_TOOL_CALLS: TokenChunk.FinishReason
    FINISH_REASON_ERROR: TokenChunk.FinishReason
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    header: Header
    request_id: str
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    chunk_index: int
    is_final: bool
    finish_reason: TokenChunk.FinishReason
    model: str
    stats: TokenStats
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., request_id: _Optional[str] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[float]] = ..., chunk_index: _Optional[int] = ..., is_final: _Optional[bool] = ..., finish_reason: _Optional[_Union[TokenChunk.FinishReason, str]] = ..., model: _Optional[str] = ..., stats: _Optional[_Union[TokenStats, _Mapping]] = ...) -> None: ...

class TokenStats(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class ToolExecution(_message.Message):
    __slots__ = ("header", "call_id", "tool_name", "stage", "arguments", "result", "error", "error_details", "duration_us", "retry_count")
    class ExecutionStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EXECUTION_STAGE_UNSPECIFIED: _ClassVar[ToolExecution.ExecutionStage]
        EXECUTION_STAGE_REQUESTED: _ClassVar[ToolExecution.ExecutionStage]
        EXECUTION_STAGE_STARTED: _ClassVar[ToolExecution.ExecutionStage]
        EXECUTION_STAGE_COMPLETED: _ClassVar[ToolExecution.ExecutionStage]
        EXECUTION_STAGE_FAILED: _ClassVar[ToolExecution.ExecutionStage]
        EXECUTION_STAGE_RETRYING: _ClassVar[ToolExecution.ExecutionStage]
    EXECUTION_STAGE_UNSPECIFIED: ToolExecution.ExecutionStage
    EXECUTION_STAGE_REQUESTED: ToolExecution.ExecutionStage
    EXECUTION_STAGE_STARTED: ToolExecution.ExecutionStage
    EXECUTION_STAGE_COMPLETED: ToolExecution.ExecutionStage
    EXECUTION_STAGE_FAILED: ToolExecution.ExecutionStage
    EXECUTION_STAGE_RETRYING: ToolExecution.ExecutionStage
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    header: Header
    call_id: str
    tool_name: str
    stage: ToolExecution.ExecutionStage
    arguments: bytes
    result: bytes
    error: str
    error_details: Error
    duration_us: int
    retry_count: int
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., call_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., stage: _Optional[_Union[ToolExecution.ExecutionStage, str]] = ..., arguments: _Optional[bytes] = ..., result: _Optional[bytes] = ..., error: _Optional[str] = ..., error_details: _Optional[_Union[Error, _Mapping]] = ..., duration_us: _Optional[int] = ..., retry_count: _Optional[int] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("header", "checkpoint_id", "state", "state_type", "checksum", "storage_uri", "compression_info", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_INFO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    header: Header
    checkpoint_id: bytes
    state: bytes
    state_type: str
    checksum: bytes
    storage_uri: str
    compression_info: CompressionInfo
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., checkpoint_id: _Optional[bytes] = ..., state: _Optional[bytes] = ..., state_type: _Optional[str] = ..., checksum: _Optional[bytes] = ..., storage_uri: _Optional[str] = ..., compression_info: _Optional[_Union[CompressionInfo, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CompressionInfo(_message.Message):
    __slots__ = ("type", "compressed_size", "uncompressed_size", "compression_ratio")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    UNCOMPRESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    type: CompressionType
    compressed_size: int
    uncompressed_size: int
    compression_ratio: float
    def __init__(self, type: _Optional[_Union[CompressionType, str]] = ..., compressed_size: _Optional[int] = ..., uncompressed_size: _Optional[int] = ..., compression_ratio: _Optional[float] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("header", "scope", "scope_id", "metrics", "tags")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    header: Header
    scope: str
    scope_id: str
    metrics: _containers.MessageMap[str, MetricValue]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., scope: _Optional[str] = ..., scope_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, MetricValue]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("int_value", "float_value", "string_value", "bool_value", "bytes_value", "unit", "type")
    class MetricType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        METRIC_TYPE_UNSPECIFIED: _ClassVar[MetricValue.MetricType]
        METRIC_TYPE_COUNTER: _ClassVar[MetricValue.MetricType]
        METRIC_TYPE_GAUGE: _ClassVar[MetricValue.MetricType]
        METRIC_TYPE_HISTOGRAM: _ClassVar[MetricValue.MetricType]
        METRIC_TYPE_SUMMARY: _ClassVar[MetricValue.MetricType]
    METRIC_TYPE_UNSPECIFIED: MetricValue.MetricType
    METRIC_TYPE_COUNTER: MetricValue.MetricType
    METRIC_TYPE_GAUGE: MetricValue.MetricType
    METRIC_TYPE_HISTOGRAM: MetricValue.MetricType
    METRIC_TYPE_SUMMARY: MetricValue.MetricType
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    string_value: str
    bool_value: bool
    bytes_value: bytes
    unit: str
    type: MetricValue.MetricType
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., bytes_value: _Optional[bytes] = ..., unit: _Optional[str] = ..., type: _Optional[_Union[MetricValue.MetricType, str]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("header", "error_code", "message", "stack_trace", "context", "severity", "exception_type", "suggestions")
    class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SEVERITY_UNSPECIFIED: _ClassVar[Error.Severity]
        SEVERITY_DEBUG: _ClassVar[Error.Severity]
        SEVERITY_INFO: _ClassVar[Error.Severity]
        SEVERITY_WARNING: _ClassVar[Error.Severity]
        SEVERITY_ERROR: _ClassVar[Error.Severity]
        SEVERITY_FATAL: _ClassVar[Error.Severity]
    SEVERITY_UNSPECIFIED: Error.Severity
    SEVERITY_DEBUG: Error.Severity
    SEVERITY_INFO: Error.Severity
    SEVERITY_WARNING: Error.Severity
    SEVERITY_ERROR: Error.Severity
    SEVERITY_FATAL: Error.Severity
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STACK_TRACE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    header: Header
    error_code: str
    message: str
    stack_trace: str
    context: _containers.ScalarMap[str, str]
    severity: Error.Severity
    exception_type: str
    suggestions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., error_code: _Optional[str] = ..., message: _Optional[str] = ..., stack_trace: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., severity: _Optional[_Union[Error.Severity, str]] = ..., exception_type: _Optional[str] = ..., suggestions: _Optional[_Iterable[str]] = ...) -> None: ...

class AttributeValue(_message.Message):
    __slots__ = ("string_value", "int_value", "float_value", "bool_value", "bytes_value", "array_value", "map_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    ARRAY_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    float_value: float
    bool_value: bool
    bytes_value: bytes
    array_value: AttributeArray
    map_value: AttributeMap
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., bytes_value: _Optional[bytes] = ..., array_value: _Optional[_Union[AttributeArray, _Mapping]] = ..., map_value: _Optional[_Union[AttributeMap, _Mapping]] = ...) -> None: ...

class AttributeArray(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[AttributeValue]
    def __init__(self, values: _Optional[_Iterable[_Union[AttributeValue, _Mapping]]] = ...) -> None: ...

class AttributeMap(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.MessageMap[str, AttributeValue]
    def __init__(self, values: _Optional[_Mapping[str, AttributeValue]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("embedding_id", "model", "dimensions", "encoding", "data")
    class EmbeddingEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EMBEDDING_ENCODING_FLOAT32: _ClassVar[Embedding.EmbeddingEncoding]
        EMBEDDING_ENCODING_FLOAT16: _ClassVar[Embedding.EmbeddingEncoding]
        EMBEDDING_ENCODING_INT8: _ClassVar[Embedding.EmbeddingEncoding]
        EMBEDDING_ENCODING_BINARY: _ClassVar[Embedding.EmbeddingEncoding]
    EMBEDDING_ENCODING_FLOAT32: Embedding.EmbeddingEncoding
    EMBEDDING_ENCODING_FLOAT16: Embedding.EmbeddingEncoding
    EMBEDDING_ENCODING_INT8: Embedding.EmbeddingEncoding
    EMBEDDING_ENCODING_BINARY: Embedding.EmbeddingEncoding
    EMBEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    embedding_id: str
    model: str
    dimensions: int
    encoding: Embedding.EmbeddingEncoding
    data: bytes
    def __init__(self, embedding_id: _Optional[str] = ..., model: _Optional[str] = ..., dimensions: _Optional[int] = ..., encoding: _Optional[_Union[Embedding.EmbeddingEncoding, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("messages", "count")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[DashStreamMessage]
    count: int
    def __init__(self, messages: _Optional[_Iterable[_Union[DashStreamMessage, _Mapping]]] = ..., count: _Optional[int] = ...) -> None: ...

class ExecutionTrace(_message.Message):
    __slots__ = ("header", "thread_id", "execution_id", "nodes_executed", "total_duration_ms", "total_tokens", "errors", "completed", "started_at", "ended_at", "final_state", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_EXECUTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    FINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    header: Header
    thread_id: str
    execution_id: str
    nodes_executed: _containers.RepeatedCompositeFieldContainer[NodeExecutionRecord]
    total_duration_ms: int
    total_tokens: int
    errors: _containers.RepeatedCompositeFieldContainer[ErrorRecord]
    completed: bool
    started_at: str
    ended_at: str
    final_state: bytes
    metadata: _containers.ScalarMap[str, bytes]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., thread_id: _Optional[str] = ..., execution_id: _Optional[str] = ..., nodes_executed: _Optional[_Iterable[_Union[NodeExecutionRecord, _Mapping]]] = ..., total_duration_ms: _Optional[int] = ..., total_tokens: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ErrorRecord, _Mapping]]] = ..., completed: _Optional[bool] = ..., started_at: _Optional[str] = ..., ended_at: _Optional[str] = ..., final_state: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class NodeExecutionRecord(_message.Message):
    __slots__ = ("node", "duration_ms", "prompt_tokens", "completion_tokens", "total_tokens", "succeeded", "started_at", "ended_at", "input", "output", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    node: str
    duration_ms: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    succeeded: bool
    started_at: str
    ended_at: str
    input: bytes
    output: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, node: _Optional[str] = ..., duration_ms: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., succeeded: _Optional[bool] = ..., started_at: _Optional[str] = ..., ended_at: _Optional[str] = ..., input: _Optional[bytes] = ..., output: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ErrorRecord(_message.Message):
    __slots__ = ("node", "message", "error_code", "timestamp", "recovered", "stack_trace")
    NODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    STACK_TRACE_FIELD_NUMBER: _ClassVar[int]
    node: str
    message: str
    error_code: str
    timestamp: str
    recovered: bool
    stack_trace: str
    def __init__(self, node: _Optional[str] = ..., message: _Optional[str] = ..., error_code: _Optional[str] = ..., timestamp: _Optional[str] = ..., recovered: _Optional[bool] = ..., stack_trace: _Optional[str] = ...) -> None: ...

class StreamControl(_message.Message):
    __slots__ = ("type", "thread_id")
    class ControlType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CONTROL_TYPE_START: _ClassVar[StreamControl.ControlType]
        CONTROL_TYPE_PAUSE: _ClassVar[StreamControl.ControlType]
        CONTROL_TYPE_RESUME: _ClassVar[StreamControl.ControlType]
        CONTROL_TYPE_STOP: _ClassVar[StreamControl.ControlType]
        CONTROL_TYPE_RESET: _ClassVar[StreamControl.ControlType]
    CONTROL_TYPE_START: StreamControl.ControlType
    CONTROL_TYPE_PAUSE: StreamControl.ControlType
    CONTROL_TYPE_RESUME: StreamControl.ControlType
    CONTROL_TYPE_STOP: StreamControl.ControlType
    CONTROL_TYPE_RESET: StreamControl.ControlType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    type: StreamControl.ControlType
    thread_id: str
    def __init__(self, type: _Optional[_Union[StreamControl.ControlType, str]] = ..., thread_id: _Optional[str] = ...) -> None: ...
