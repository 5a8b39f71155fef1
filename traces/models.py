"""Rows that persist the canonical ``ExecutionTrace`` (traces/trace.py).

``traces/store.py`` is the only code that maps a trace to these rows and back. State
snapshots are content-addressed per project (``StateSnapshot``), so the ``state_after`` of
one step and the ``state_before`` of the next cost one blob. Summary columns on ``Run``
let lists and filters work without reading any snapshot.

One module past ~400 lines on purpose: it is the schema, as Django expects it in one
place (``makemigrations`` reads it whole), and is mostly field declarations and
constraints; behaviour that is more than a row's own lives in the topic modules.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.db import models
from django.utils import timezone

from . import bulk, zstd
from .fields import U64Field
from .trace import U64_MAX


class Role(models.TextChoices):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"


class ProjectQuerySet(models.QuerySet["Project"]):
    def for_user(self, user: Any) -> ProjectQuerySet:
        """The projects ``user`` is a member of (none for an anonymous user)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Project(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    # What ingestion drops, redacts, truncates or keeps aside (traces/capture_policy.py
    # validates it on every write; traces/capture.py applies it).
    capture_policy = models.JSONField(default=dict, blank=True)
    # Runs older than this many days are deleted by the retention purge
    # (traces/retention.py); null keeps them forever.
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def role_of(self, user: Any) -> str | None:
        if not user.is_authenticated:
            return None
        membership = self.memberships.filter(user=user).first()
        return membership.role if membership else None


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership"),
        ]


API_KEY_PREFIX = "dfk_"


def hash_api_key(raw: str) -> str:
    # Keys are 256 bits of randomness, so a fast hash is enough (as for GitHub tokens);
    # a slow password hash would cost every ingestion request.
    return hashlib.sha256(raw.encode()).hexdigest()


class KeyScope(models.TextChoices):
    """What an API key may do in its project: ``read`` reads (a viewer's rights), ``write``
    also ingests, reviews and exports (a member's), ``admin`` also manages (an admin's)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)

    def for_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not, with its project.

        Every producer request runs this, so it skips the queryset compiler
        (``traces/rows.py`` says why).
        """
        key = bulk.fetch_one(self.model, '"key_hash" = %s', [key_hash], using=self.db)
        if key is not None:
            project = bulk.fetch_one(Project, '"id" = %s', [key.project_id], using=self.db)
            if project is None:  # deleted in between
                return None
            key.project = project
        return key


class ApiKey(models.Model):
    """A project-scoped ingestion/read key. Only its hash is stored; the key is shown once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Keys issued before scopes existed ingested and reviewed: they keep ``write``.
    scope = models.CharField(max_length=8, choices=KeyScope.choices, default=KeyScope.WRITE)

    objects = ApiKeyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project.slug})"

    @classmethod
    def issue(
        cls, project: Project, name: str = "", scope: str = KeyScope.WRITE
    ) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the raw key, which is never stored."""
        raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            project=project, name=name, prefix=raw[:12], key_hash=hash_api_key(raw), scope=scope
        )
        return key, raw

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class StateSnapshot(models.Model):
    """One distinct state value of a project, zstd-compressed JSON.

    ``digest`` is the SHA-256 of the canonical JSON (``trace.state_hash``); ``data`` keeps
    the producer's key order so a loaded trace reads as it was sent.
    """

    # No index of its own: unique_snapshot (project, digest) leads with it (one fewer
    # index to update per stored state; the same for the run, step and event keys below).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    digest = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField(help_text="Uncompressed JSON size")
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "digest"], name="unique_snapshot"),
        ]

    @staticmethod
    def compress(json_bytes: bytes) -> bytes:
        return zstd.compress(json_bytes)

    def json_bytes(self) -> bytes:
        return zstd.decompress(bytes(self.data))

    def value(self) -> Any:
        return msgspec.json.decode(self.json_bytes())


def graph_name_of(metadata: dict[str, Any]) -> str:
    """A run's graph name, as DashFlow puts it in the metadata (cut to the column)."""
    name = metadata.get("graph_name")
    return name[:200] if isinstance(name, str) else ""


class RunStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RunQuerySet(models.QuerySet["Run"]):
    def visible_to(self, user: Any) -> RunQuerySet:
        return self.filter(project__in=Project.objects.for_user(user))

    def lock(self, project: Project, execution_id: str) -> Run | None:
        """The run, its row locked until the transaction ends (``FOR UPDATE``), or None;
        ``project`` is set on it. Every live event runs this (``traces/bulk.py``)."""
        run = bulk.fetch_one(
            self.model,
            '"project_id" = %s AND "execution_id" = %s',
            [project.pk, execution_id],
            using=self.db,
            for_update=True,
        )
        if run is not None:
            run.project = project
        return run


class Run(models.Model):
    """One execution of a graph: the trace's top level plus summary columns."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="runs", db_index=False
    )  # unique_run (project, execution_id) leads with it
    execution_id = models.CharField(max_length=200)
    thread_id = models.CharField(max_length=200, null=True, blank=True)
    parent_execution_id = models.CharField(max_length=200, null=True, blank=True)
    root_execution_id = models.CharField(max_length=200, null=True, blank=True)
    depth = U64Field(null=True, blank=True)
    graph_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    completed = models.BooleanField(default=False)
    # started_at orders every list, so it is never null: the trace's own time when it has
    # one, else the time it arrived. The *_text columns keep the producer's exact string.
    started_at = models.DateTimeField()
    started_at_text = models.CharField(max_length=64, null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_at_text = models.CharField(max_length=64, null=True, blank=True)
    duration_ms = U64Field(default=0)
    total_tokens = U64Field(default=0)
    node_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    first_error = models.TextField(blank=True)
    first_error_type = models.CharField(max_length=200, blank=True)
    first_error_node = models.CharField(max_length=200, blank=True)
    final_state = models.ForeignKey(
        StateSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)
    execution_metrics = models.JSONField(null=True, blank=True)
    performance_metrics = models.JSONField(null=True, blank=True)
    # SHA-256 of the trace's JSON as last stored: an identical re-send writes nothing.
    trace_digest = models.CharField(max_length=64, blank=True)
    # Live streaming (traces/live.py): the highest seq stored and how many events there
    # are; fewer events than last_seq means a gap that a retried batch may still fill.
    last_seq = models.PositiveBigIntegerField(default=0)
    event_count = models.PositiveIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # What the run list's free text (``q``) matches, lower-cased (traces/filters.py). Its
    # trigram index is PostgreSQL-only, so migration 0004_runlist_search creates it.
    search_text = models.TextField(blank=True, default="")
    # A pinned run is kept whatever the project's retention (traces/retention.py).
    pinned = models.BooleanField(default=False, db_default=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "execution_id"], name="unique_run"),
        ]
        indexes = [
            models.Index(fields=["project", "-started_at", "-id"], name="run_newest"),
            models.Index(fields=["project", "status", "-started_at"], name="run_status"),
            models.Index(fields=["project", "thread_id"], name="run_thread"),
            # The run list's other sorts, with the id tiebreak its keyset cursor seeks by.
            models.Index(fields=["project", "duration_ms", "id"], name="run_duration"),
            models.Index(fields=["project", "total_tokens", "id"], name="run_tokens"),
            models.Index(fields=["project", "graph_name", "-started_at", "-id"], name="run_graph"),
        ]

    def __str__(self) -> str:
        return self.execution_id

    def step(self, index: int) -> Step | None:
        """The step with DashFlow ``index`` (the first, should a producer repeat one)."""
        if not 0 <= index <= U64_MAX:
            return None
        return self.steps.filter(index=index).first()

    @property
    def missing_seqs(self) -> int:
        """How many seqs below ``last_seq`` have not arrived."""
        return self.last_seq - self.event_count

    def is_stale(self, now: datetime | None = None) -> bool:
        """A running run that has sent nothing for RUN_STALE_AFTER seconds: shown as stale
        rather than running forever."""
        if self.status != RunStatus.RUNNING:
            return False
        last = self.last_event_at or self.updated_at
        limit = timedelta(seconds=settings.RUN_STALE_AFTER)
        return (now or timezone.now()) - last > limit

    def summary(self) -> dict[str, Any]:
        """The run row as the API, pages and websockets show it (no states)."""
        return {
            "execution_id": self.execution_id,
            "project": self.project.slug,
            "thread_id": self.thread_id,
            "parent_execution_id": self.parent_execution_id,
            "root_execution_id": self.root_execution_id,
            "depth": self.depth,
            "graph_name": self.graph_name,
            "status": self.status,
            "stale": self.is_stale(),
            "completed": self.completed,
            "started_at": self.started_at_text,
            "ended_at": self.ended_at_text,
            "duration_ms": self.duration_ms,
            "total_tokens": self.total_tokens,
            "node_count": self.node_count,
            "error_count": self.error_count,
            "first_error": self.first_error or None,
            "first_error_type": self.first_error_type or None,
            "first_error_node": self.first_error_node or None,
            "last_seq": self.last_seq,
            "missing_seqs": self.missing_seqs,
            "pinned": self.pinned,
            "metadata": self.metadata,
        }


class Step(models.Model):
    """One ``NodeExecution`` of a run; ``position`` is its place in ``nodes_executed``."""

    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="steps", db_index=False
    )  # unique_step (run, position) leads with it
    position = models.PositiveIntegerField()
    index = U64Field()
    node = models.CharField(max_length=200)
    started_at_text = models.CharField(max_length=64, null=True, blank=True)
    duration_ms = U64Field(default=0)
    tokens_used = U64Field(default=0)
    state_before = models.ForeignKey(
        StateSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    state_after = models.ForeignKey(
        StateSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    tools_called = models.JSONField(default=list, blank=True)
    success = models.BooleanField(default=True)
    error_message = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="unique_step"),
        ]
        indexes = [
            models.Index(fields=["node", "run"], name="step_node"),
            # A step by its DashFlow index (the step panel, links, the API): without it a
            # 100,000-step run's lookup filtered every step of the run (~50 ms).
            models.Index(fields=["run", "index"], name="step_by_index"),
            # The dashboard's per-node aggregates read only these columns of a window's
            # steps: from this index alone, per run, instead of the whole step rows.
            models.Index(
                fields=["run"],
                include=["node", "duration_ms", "tokens_used"],
                name="step_run_cover",
            ),
            # The dashboard's loops: only the steps that left the state as it was can be a
            # loop, a small share of all steps; this finds them without reading the rest.
            models.Index(
                fields=["run", "position"],
                include=["node"],
                condition=models.Q(state_after=models.F("state_before")),
                name="step_unchanged",
            ),
        ]
        ordering = ["position"]

    def summary(self) -> dict[str, Any]:
        """The step without its states, as the API and the run page list it."""
        return {
            "index": self.index,
            "position": self.position,
            "node": self.node,
            "started_at": self.started_at_text,
            "duration_ms": self.duration_ms,
            "tokens_used": self.tokens_used,
            "tools_called": self.tools_called,
            "success": self.success,
            "error_message": self.error_message,
            "metadata": self.metadata,
            "has_state": self.state_before_id is not None or self.state_after_id is not None,
        }


class StepRollup(models.Model):
    """Steps of a project's runs counted per UTC day of the run's start, graph, node and
    duration bucket, with their total duration and tokens: what the dashboard's percentiles
    and tokens per node over whole days read instead of the steps. ``traces/rollups.py``
    keeps it, in the ingest transaction."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # unique_step_rollup leads with it
    day = models.DateField()
    graph_name = models.CharField(max_length=200, blank=True)
    node = models.CharField(max_length=200)
    bucket = models.PositiveSmallIntegerField()
    steps = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # The upsert's conflict target; its order serves the dashboard's range of days.
            models.UniqueConstraint(
                fields=["project", "day", "graph_name", "node", "bucket"],
                name="unique_step_rollup",
            ),
        ]


class RunError(models.Model):
    """One ``ErrorTrace`` of a run, in the order the trace lists them."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="errors")
    position = models.PositiveIntegerField()
    node = models.CharField(max_length=200)
    message = models.TextField()
    error_type = models.CharField(max_length=200, null=True, blank=True)
    state_at_error = models.ForeignKey(
        StateSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    timestamp_text = models.CharField(max_length=64, null=True, blank=True)
    execution_index = U64Field(null=True, blank=True)
    recoverable = models.BooleanField(default=False)
    retry_attempted = models.BooleanField(default=False)
    context = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="unique_run_error"),
        ]
        indexes = [models.Index(fields=["error_type", "run"], name="error_type")]
        ordering = ["position"]

    def summary(self) -> dict[str, Any]:
        """The error without its state."""
        return {
            "node": self.node,
            "message": self.message,
            "error_type": self.error_type,
            "timestamp": self.timestamp_text,
            "execution_index": self.execution_index,
            "recoverable": self.recoverable,
            "retry_attempted": self.retry_attempted,
            "context": self.context,
            "metadata": self.metadata,
        }


class EventType(models.TextChoices):
    RUN_STARTED = "run_started"
    NODE_STARTED = "node_started"
    NODE_FINISHED = "node_finished"
    ERROR = "error"
    RUN_FINISHED = "run_finished"


class RunEvent(models.Model):
    """One live event of a run, as a producer streamed it.

    ``data`` is the event's JSON, zstd-compressed, with its states taken out: they live in
    ``StateSnapshot`` like every other state, and ``states`` maps each state field of the
    event to its snapshot id, so a replayed event is the one that was sent.
    """

    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="events", db_index=False
    )  # unique_event_seq (run, seq) leads with it
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=20, choices=EventType.choices)
    data = models.BinaryField()
    states = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A repeated seq is a no-op: the insert skips it on this constraint.
            models.UniqueConstraint(fields=["run", "seq"], name="unique_event_seq"),
        ]
        ordering = ["seq"]


class DashStreamCursor(models.Model):
    """Where a DashStream producer stands in one run (``traces/dashstream_ingest.py``).

    DashStream spreads a node over several messages (NODE_START, NODE_END, the StateDiff
    after it) that may arrive in separate requests, and its diffs apply to the state the
    receiver holds; this row carries that between requests. ``work`` is the rest of it,
    zstd-compressed msgspec (the state held, the open node executions, the recent message
    ids and missing sequences, all bounded), read and written whole with the row locked.
    The counters are columns so the run page and the API can show them.
    """

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="dashstream"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # dashstream_thread (project, thread_id, open) leads with it
    thread_id = models.CharField(max_length=200, blank=True)
    # Open from GRAPH_START until GRAPH_END (or the ExecutionTrace summary): the run a
    # thread's messages without an execution id belong to.
    open = models.BooleanField(default=True)
    last_sequence = models.PositiveBigIntegerField(default=0)
    next_seq = models.PositiveBigIntegerField(default=1)  # the run's next live event seq
    gaps = models.PositiveIntegerField(default=0)
    reorders = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    needs_resync = models.BooleanField(default=False)
    resync_reason = models.TextField(blank=True)
    work = models.BinaryField(default=b"")

    class Meta:
        indexes = [models.Index(fields=["project", "thread_id", "open"], name="dashstream_thread")]

    def health(self) -> dict[str, Any]:
        """What the run page and the API show about the stream."""
        return {
            "last_sequence": self.last_sequence,
            "gaps": self.gaps,
            "reorders": self.reorders,
            "duplicates": self.duplicates,
            "needs_resync": self.needs_resync,
            "resync_reason": self.resync_reason or None,
        }


class SpanBuffer(models.Model):
    """The spans of one OpenTelemetry trace received so far (``traces/otlp.py``).

    Spans of a trace arrive in any order over several requests, so they wait here until
    they say what the run is; the run itself is written through the one ingest workflow.
    ``spans`` is the list of ``traces.spans.Span`` as zstd msgpack. Bounded: at most
    ``OTLP_MAX_TRACE_SPANS`` spans a trace, ``OTLP_MAX_OPEN_TRACES`` unfinished traces a
    project, and a row idle for ``OTLP_IDLE_TIMEOUT`` seconds is ended (unfinished) or
    deleted (finished).
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # unique_span_buffer (project, trace_id) leads with it
    trace_id = models.CharField(max_length=32)
    spans = models.BinaryField()
    span_count = models.PositiveIntegerField(default=0)
    # Node executions already sent as live events (a prefix of the run's nodes).
    emitted = models.PositiveIntegerField(default=0)
    # The run was stored whole: its root span came, or the idle timeout ended it.
    finished = models.BooleanField(default=False)
    last_span_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id"], name="unique_span_buffer"),
        ]
        indexes = [
            # The idle sweep: the oldest rows first, per project and for all projects.
            models.Index(fields=["project", "finished", "last_span_at"], name="span_buffer_idle"),
            models.Index(fields=["last_span_at"], name="span_buffer_age"),
        ]


class CaptureAttachment(models.Model):
    """A value a capture rule kept out of the state blob (``{"$attachment": id}`` marks its
    place), fetched on demand by the step panel and ``GET /api/v1/attachments/<id>``.

    ``ident`` is a keyed digest of the value, so re-ingesting a run writes nothing new.
    One row per run that stored the value (and one with no run for a value held in an OTLP
    span buffer before its run existed): a run's attachments go with it (the retention
    purge), and another run holding the same value keeps its own row.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # the unique constraints (project, ident, ...) lead with it
    ident = models.CharField(max_length=32)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, null=True, related_name="+")
    size = models.PositiveBigIntegerField()
    data = models.BinaryField()  # zstd of the value's canonical JSON

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "ident", "run"],
                condition=models.Q(run__isnull=False),
                name="unique_capture_attachment_of_run",
            ),
            models.UniqueConstraint(
                fields=["project", "ident"],
                condition=models.Q(run__isnull=True),
                name="unique_capture_attachment_unbound",
            ),
        ]


# --- Team review of failures -------------------------------------------------------------
# The rows are here; the rules that write them live in traces/failures.py (grouping) and
# traces/review.py (reviews, verdicts, comments, activity).


class GroupStatus(models.TextChoices):
    NEW = "new"
    TRIAGED = "triaged"
    RESOLVED = "resolved"
    IGNORED = "ignored"


class FailureGroup(models.Model):
    """Failures of one kind: same node, error type and normalised message."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="failure_groups")
    fingerprint = models.CharField(max_length=64)
    node = models.CharField(max_length=200)
    error_type = models.CharField(max_length=200, blank=True)
    # The message with numbers, ids, URLs and quoted values replaced by placeholders.
    message = models.TextField()
    sample_message = models.TextField(blank=True, help_text="The latest raw message")
    status = models.CharField(max_length=10, choices=GroupStatus.choices, default=GroupStatus.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    regressed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "fingerprint"], name="unique_group"),
        ]
        indexes = [
            models.Index(fields=["project", "-last_seen"], name="group_recent"),
            models.Index(fields=["project", "status", "-last_seen"], name="group_status"),
        ]

    def __str__(self) -> str:
        return f"{self.node}: {self.message[:60]}"


class Failure(models.Model):
    """One occurrence of a group in a run: an ErrorTrace, or a failed step or run.

    ``key`` names what failed within the run ("error:<position>", "step:<position>" or
    "run"), so grouping the same run twice adds nothing.
    """

    group = models.ForeignKey(FailureGroup, on_delete=models.CASCADE, related_name="failures")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="failures")
    key = models.CharField(max_length=40)
    step_position = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="unique_failure"),
        ]
        indexes = [models.Index(fields=["group", "-seen_at"], name="failure_recent")]


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed"
    NEEDS_ATTENTION = "needs_attention"
    REVIEWED = "reviewed"


class RunReview(models.Model):
    """A run's review state; a run without a row is unreviewed."""

    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, primary_key=True, related_name="review"
    )
    status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labels = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "assignee"], name="review_status")]


class Verdict(models.TextChoices):
    GOOD = "good"
    BAD = "bad"


class StepVerdict(models.Model):
    """A reviewer's verdict on one step (by its position in ``nodes_executed``), used to
    pick training data. Keyed by position, so re-ingesting the run keeps it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="verdicts")
    step_position = models.PositiveIntegerField()
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    reason = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step_position"], name="unique_verdict"),
        ]


class Comment(models.Model):
    """A markdown comment on a run, on one of its steps, or on a JSON path of a step."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="comments")
    step_position = models.PositiveIntegerField(null=True, blank=True)
    path = models.CharField(max_length=1000, blank=True, help_text="JSON Pointer in the state")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    mentions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["run", "created_at"], name="comment_run")]


class Activity(models.Model):
    """Who changed what on a run or a failure group, and when."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="activity"
    )
    group = models.ForeignKey(
        FailureGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="activity"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=40)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["run", "-created_at"], name="activity_run"),
            models.Index(fields=["group", "-created_at"], name="activity_group"),
        ]


# --- Optimizer exports (traces/exports.py, traces/tasks.py) -------------------------------


class ExportFormat(models.TextChoices):
    TRAINING_EXAMPLES = "training_examples"
    OPENAI_FINETUNE = "openai_finetune"
    DASHSTREAM = "dashstream"
    DASHSTREAM_JSONL = "dashstream_jsonl"
    CSV = "csv"
    TRACES_JSONL = "traces_jsonl"


class ExportStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Export(models.Model):
    """One background export of selected runs to a file."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=20, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    runs_total = models.PositiveIntegerField(default=0)
    runs_done = models.PositiveIntegerField(default=0)
    row_count = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    file_name = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"], name="export_recent")]


# --- Alerts and the inbox (traces/alerts.py, traces/webhooks.py, traces/inbox.py) ---------


class AlertKind(models.TextChoices):
    FAILURE_RATE = "failure_rate"
    NEW_FAILURE_GROUP = "new_failure_group"
    REGRESSION = "regression"
    NODE_P95 = "node_p95"


def new_alert_secret() -> str:
    return secrets.token_hex(32)


class AlertRule(models.Model):
    """A condition on a project's recent runs, checked every minute (traces/alerts.py).

    ``threshold`` means what the kind says: a fraction of failed runs for ``failure_rate``,
    a number of groups for ``new_failure_group`` and ``regression``, milliseconds for
    ``node_p95``. ``breached`` is the de-duplication state of the threshold kinds: set when
    the rule fires, cleared when an evaluation finds the condition false.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    threshold = models.FloatField(default=0)
    window_minutes = models.PositiveIntegerField(default=60)
    node = models.CharField(max_length=200, blank=True)
    graph_name = models.CharField(max_length=200, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    # Signs each webhook body (HMAC-SHA256); admins see it on the settings page.
    secret = models.CharField(max_length=64, default=new_alert_secret)
    enabled = models.BooleanField(default=True)
    breached = models.BooleanField(default=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["enabled", "project"], name="alert_rule_enabled")]

    def __str__(self) -> str:
        return f"{self.project.slug}: {self.name}"


class DeliveryStatus(models.TextChoices):
    NONE = "none"  # no webhook URL
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AlertFiring(models.Model):
    """One time a rule fired: what it measured, the runs behind it (at most
    ``ALERT_MAX_RUNS``), and how each channel delivered it (every webhook attempt)."""

    rule = models.ForeignKey(
        AlertRule, on_delete=models.CASCADE, related_name="firings", db_index=False
    )  # firing_recent (rule, -fired_at) leads with it
    fired_at = models.DateTimeField(default=timezone.now)
    value = models.FloatField()
    threshold = models.FloatField()
    window_minutes = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    execution_ids = models.JSONField(default=list, blank=True)
    # What the group kinds fired for ("group:<id>", "group:<id>@<regressed_at>"): never twice.
    subjects = models.JSONField(default=list, blank=True)
    inbox_items = models.PositiveIntegerField(default=0)
    webhook_status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.NONE
    )
    webhook_attempts = models.JSONField(default=list, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [models.Index(fields=["rule", "-fired_at"], name="firing_recent")]


class InboxKind(models.TextChoices):
    ALERT = "alert"
    MENTION = "mention"
    ASSIGNED = "assigned"
    REPLY = "reply"


class InboxItem(models.Model):
    """One notice for one user in one project: an alert, a mention, an assignment or a
    reply (``traces/inbox.py``)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="inbox_items",
        db_index=False,
    )  # inbox_recent (user, project, -created_at) leads with it
    kind = models.CharField(max_length=20, choices=InboxKind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=2000, blank=True)
    firing = models.ForeignKey(
        AlertFiring, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "project", "-created_at"], name="inbox_recent"),
            models.Index(
                fields=["user", "project"],
                name="inbox_unread",
                condition=models.Q(read_at__isnull=True),
            ),
        ]
