import logging
import signal
import threading
from concurrent import futures
from typing import Any

import grpc
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from traces import otlp
from traces.errors import InputError
from traces.permissions import writing_key_project
from traces.spans import spans_of

log = logging.getLogger(__name__)

# InputError's HTTP status as the gRPC code the OTLP exporters act on.
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """``TraceService/Export``: the key from the ``authorization`` metadata, then the same
    export as ``POST /v1/traces`` (``traces/otlp.py``)."""

    def Export(  # the RPC's name
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata())
        # Each call runs in a pool thread with its own connection: closed when unusable or
        # past its age before the call, and after it, as Django does around a request.
        close_old_connections()
        try:
            project = writing_key_project(str(metadata.get("authorization", "")), "ingestion")
            done = otlp.export(project, spans_of(request))
        except InputError as exc:
            context.abort(_CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), str(exc))
        except otlp.Busy as exc:
            # UNAVAILABLE: the exporters retry it with backoff.
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except DatabaseError:
            log.exception("OTLP/gRPC export failed on the database")
            context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry")
        finally:
            close_old_connections()
        answer = ExportTraceServiceResponse()
        if done.rejected:
            answer.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=done.rejected, error_message=done.error)
            )
        return answer


def serve(host: str, port: int, workers: int) -> tuple[grpc.Server, int]:
    """A started gRPC server with the trace service; the port it listens on."""
    limit = settings.TRACE_MAX_BODY_BYTES
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", limit)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound


class Command(BaseCommand):
    help = (
        "Serve the OTLP/gRPC trace receiver (TraceService/Export) on OTLP_GRPC_PORT; "
        "exporters authenticate with a project API key in the 'authorization' metadata "
        "('Bearer <key>')."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=None, help="default: OTLP_GRPC_PORT (4317)")
        parser.add_argument("--workers", type=int, default=8, help="concurrent exports")

    def handle(self, *args: Any, **options: Any) -> None:
        port = settings.OTLP_GRPC_PORT if options["port"] is None else options["port"]
        server, bound = serve(options["host"], port, options["workers"])
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"OTLP/gRPC listening on {options['host']}:{bound}", ending="\n")
        self.stdout.flush()
        stop.wait()
        server.stop(grace=5).wait()
