"""The review API (DRF): a run's review, step verdicts, comments, activity, and the export
of a project's reviews. Thin views around ``traces/review.py``.

Who may: any member of the project reads (viewer and up); writing needs ``member`` (an
API key acts as a member of its project); a viewer gets 403 on a write. Anyone outside
the project gets 404 on every URL, as everywhere in the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import review, review_export, review_json
from ..errors import InputError
from ..models import Comment, ReviewStatus, Run, Verdict
from ..permissions import READ, REVIEW, actor_role, has_role
from .auth import request_project
from .render import FastJSONRenderer, TextRenderer, json_errors
from .request import EXECUTION_ID_PARAM, PROJECT_PARAM, get_run, one_or_404, require_role

INDEX_PARAM = OpenApiParameter("index", int, OpenApiParameter.PATH, description="Step index")
ERRORS: dict[int | tuple[int, str], Any] = {
    400: OpenApiResponse(description="Invalid input: `detail`, `path` and `rule` say why"),
    403: OpenApiResponse(description="A viewer, or not the comment's author"),
    404: OpenApiResponse(description="No such run, step or comment in this project"),
}


def body_of(request: Request) -> Mapping[str, Any]:
    data = request.data
    if not isinstance(data, Mapping):
        raise InputError("$", "expected a JSON object")
    return data


def review_run(request: Request, execution_id: str, needed: str) -> Run:
    run = get_run(request, execution_id)
    require_role(request, run.project, needed)
    return run


class VerdictSerializer(serializers.Serializer[Any]):
    step_index = serializers.IntegerField(allow_null=True)
    step_position = serializers.IntegerField()
    node = serializers.CharField(allow_null=True)
    verdict = serializers.ChoiceField(Verdict.choices, allow_null=True)
    reason = serializers.CharField(allow_blank=True, required=False)
    user = serializers.CharField(allow_null=True, required=False)
    updated_at = serializers.DateTimeField(required=False)


class PermissionsSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    role = serializers.ChoiceField(["viewer", "member", "admin"])
    can_review = serializers.BooleanField()
    is_admin = serializers.BooleanField()


class MemberSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    role = serializers.CharField()


class ReviewSerializer(serializers.Serializer[Any]):
    execution_id = serializers.CharField()
    status = serializers.ChoiceField(ReviewStatus.choices)
    assignee = serializers.CharField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    updated_at = serializers.DateTimeField(allow_null=True)
    verdicts = VerdictSerializer(many=True)
    you = PermissionsSerializer()
    members = MemberSerializer(many=True, help_text="Who can be assigned or mentioned")


class ReviewPatchSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(ReviewStatus.choices, required=False)
    assignee = serializers.CharField(
        allow_null=True, required=False, help_text="A username of a member; null unassigns"
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=review.MAX_LABEL_LENGTH),
        max_length=review.MAX_LABELS,
        required=False,
        help_text="Replaces the labels",
    )


class VerdictPutSerializer(serializers.Serializer[Any]):
    verdict = serializers.ChoiceField(Verdict.choices)
    reason = serializers.CharField(allow_blank=True, required=False)


class CommentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    execution_id = serializers.CharField()
    step_index = serializers.IntegerField(allow_null=True)
    step_position = serializers.IntegerField(allow_null=True)
    path = serializers.CharField(allow_blank=True, help_text="JSON Pointer in the step's state")
    author = serializers.CharField(allow_null=True, help_text="null: written with an API key")
    body = serializers.CharField(help_text="Markdown")
    html = serializers.CharField(help_text="The body rendered safely (no raw HTML)")
    mentions = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)


class CommentCreateSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=review.MAX_COMMENT_LENGTH)
    step = serializers.IntegerField(
        required=False, allow_null=True, help_text="Step index; omit for the whole run"
    )
    path = serializers.CharField(
        required=False, allow_blank=True, help_text="JSON Pointer in the step's state"
    )


class CommentEditSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=review.MAX_COMMENT_LENGTH)


class ActivitySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    actor = serializers.CharField(allow_null=True)
    verb = serializers.ChoiceField(
        [
            "status_changed",
            "assigned",
            "labels_changed",
            "verdict_set",
            "verdict_cleared",
            "commented",
            "comment_edited",
            "comment_deleted",
        ]
    )
    detail = serializers.DictField(help_text='What changed: "from", "to" and context')
    created_at = serializers.DateTimeField()


def review_body(request: Request, run: Run) -> dict[str, Any]:
    snapshot = review_json.run_review_snapshot(run)
    role = actor_role(run.project, request.user) or "viewer"
    return {
        **snapshot["review"],
        "verdicts": snapshot["verdicts"],
        "you": {
            "username": str(request.user.username),
            "role": role,
            "can_review": has_role(role, REVIEW),
            "is_admin": role == "admin",
        },
        "members": review_json.members_view(run.project),
    }


class RunReviewView(APIView):
    @extend_schema(
        operation_id="get_run_review",
        summary="A run's review: status, assignee, labels, step verdicts",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM],
        responses={200: ReviewSerializer, 404: ERRORS[404]},
    )
    def get(self, request: Request, execution_id: str) -> Response:
        run = review_run(request, execution_id, READ)
        return Response(review_body(request, run))

    @extend_schema(
        operation_id="update_run_review",
        summary="Change a run's review status, assignee and/or labels",
        description="Each field that changes is one entry in the run's activity; the run's "
        "viewers see the change live.",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM],
        request=ReviewPatchSerializer,
        responses={200: ReviewSerializer, **ERRORS},
    )
    def patch(self, request: Request, execution_id: str) -> Response:
        run = review_run(request, execution_id, REVIEW)
        data = body_of(request)
        fields = {k: data[k] for k in ("status", "assignee", "labels") if k in data}
        unknown = sorted(set(data) - {"status", "assignee", "labels"})
        if unknown:
            raise InputError(unknown[0], "unknown field")
        review.update_review(run, request.user, **fields)
        return Response(review_body(request, run))


class StepVerdictView(APIView):
    @extend_schema(
        operation_id="set_step_verdict",
        summary="Set the verdict (good/bad, with a reason) on one step",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM, INDEX_PARAM],
        request=VerdictPutSerializer,
        responses={200: VerdictSerializer, **ERRORS},
    )
    def put(self, request: Request, execution_id: str, index: int) -> Response:
        run = review_run(request, execution_id, REVIEW)
        step = review.step_at(run, index)
        data = body_of(request)
        row = review.set_verdict(run, step, request.user, data.get("verdict"), data.get("reason"))
        return Response(review_json.verdict_view(row, step))

    @extend_schema(
        operation_id="clear_step_verdict",
        summary="Remove the verdict on one step",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM, INDEX_PARAM],
        responses={204: OpenApiResponse(description="Removed (or there was none)"), **ERRORS},
    )
    def delete(self, request: Request, execution_id: str, index: int) -> Response:
        run = review_run(request, execution_id, REVIEW)
        review.clear_verdict(run, review.step_at(run, index), request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def parse_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise InputError(name, "expected a non-negative integer")
    return int(value)


class RunComments(APIView):
    @extend_schema(
        operation_id="list_run_comments",
        summary="Comments of a run, oldest first",
        parameters=[
            PROJECT_PARAM,
            EXECUTION_ID_PARAM,
            OpenApiParameter("step", int, description="Only comments on this step (index)"),
            OpenApiParameter("path", str, description="Only comments on this JSON Pointer"),
        ],
        responses={200: CommentSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, execution_id: str) -> Response:
        run = review_run(request, execution_id, READ)
        which = review_json.CommentFilter(
            step=parse_int(request.query_params.get("step"), "step"),
            path=request.query_params.get("path"),
        )
        return Response(review_json.list_comments(run, which))

    @extend_schema(
        operation_id="add_run_comment",
        summary="Comment on a run, a step, or a JSON path of a step's state",
        description="Markdown (no raw HTML); `@username` mentions project members. The "
        "run's viewers see it live.",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM],
        request=CommentCreateSerializer,
        responses={201: CommentSerializer, **ERRORS},
    )
    def post(self, request: Request, execution_id: str) -> Response:
        run = review_run(request, execution_id, REVIEW)
        data = body_of(request)
        step_index = data.get("step")
        step = None
        if step_index is not None:
            if not isinstance(step_index, int) or isinstance(step_index, bool) or step_index < 0:
                raise InputError("step", "expected a step index")
            step = review.step_at(run, step_index)
        comment = review.add_comment(run, request.user, data.get("body"), step, data.get("path"))
        view = review_json.comment_view(comment, step.index if step else None)
        return Response(view, status=status.HTTP_201_CREATED)


def project_comment(request: Request, comment_id: int, needed: str) -> Comment:
    project = request_project(request)
    comments = Comment.objects.select_related("run__project", "author")
    comment = one_or_404(
        comments.filter(pk=comment_id, run__project=project), f"comment {comment_id}"
    )
    require_role(request, project, needed)
    return comment


class CommentDetail(APIView):
    @extend_schema(
        operation_id="edit_comment",
        summary="Edit your own comment",
        parameters=[PROJECT_PARAM, OpenApiParameter("id", int, OpenApiParameter.PATH)],
        request=CommentEditSerializer,
        responses={200: CommentSerializer, **ERRORS},
    )
    def patch(self, request: Request, id: int) -> Response:
        comment = project_comment(request, id, REVIEW)
        comment = review.edit_comment(comment, request.user, body_of(request).get("body"))
        return Response(review_json.comment_view(comment, review_json.comment_step_index(comment)))

    @extend_schema(
        operation_id="delete_comment",
        summary="Delete a comment: your own, or any as a project admin",
        parameters=[PROJECT_PARAM, OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={204: OpenApiResponse(description="Deleted"), **ERRORS},
    )
    def delete(self, request: Request, id: int) -> Response:
        comment = project_comment(request, id, REVIEW)
        review.delete_comment(comment, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunActivity(APIView):
    @extend_schema(
        operation_id="list_run_activity",
        summary="Who changed what on a run, newest first",
        parameters=[
            PROJECT_PARAM,
            EXECUTION_ID_PARAM,
            OpenApiParameter("limit", int, description="At most this many (default 200, max 1000)"),
        ],
        responses={200: ActivitySerializer(many=True), 404: ERRORS[404]},
    )
    def get(self, request: Request, execution_id: str) -> Response:
        run = review_run(request, execution_id, READ)
        limit = parse_int(request.query_params.get("limit"), "limit") or 200
        entries = run.activity.select_related("actor")[: min(limit, 1000)]
        return Response([review_json.activity_view(a) for a in entries])


async def aiter_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as an async iterator: each step (a database batch) in Django's sync thread."""

    def pull() -> bytes | None:
        return next(chunks, None)

    step = sync_to_async(pull, thread_sensitive=True)
    while True:
        chunk = await step()
        if chunk is None:
            return
        yield chunk


class CSVRenderer(TextRenderer):
    """Lets ``?format=csv`` (and ``Accept: text/csv``) pick the CSV export, which streams;
    errors are answered in JSON (``json_errors``)."""

    media_type = "text/csv"
    format = "csv"


class ReviewExport(APIView):
    renderer_classes = [FastJSONRenderer, CSVRenderer]

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # DRF answers an unknown ?format= with 404; it is bad input, so 400 naming it.
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            raise InputError("format", "expected json or csv") from None

    @extend_schema(
        operation_id="export_reviews",
        summary="Every review, step verdict and comment of the project, streamed",
        description="`?format=json` (default): one object `{project, reviews, verdicts, "
        "comments}`. `?format=csv`: one table; the `record` column says review, verdict or "
        "comment. Any member of the project may read it, viewers included (as they read "
        "every review); text cells a spreadsheet would evaluate start with `'`.",
        parameters=[PROJECT_PARAM],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            403: ERRORS[403],
            404: ERRORS[404],
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        project = request_project(request)
        require_role(request, project, READ)
        assert request.accepted_renderer is not None
        if request.accepted_renderer.format == "csv":
            chunks = review_export.csv_chunks(project)
            content_type, name = "text/csv; charset=utf-8", f"{project.slug}-reviews.csv"
        else:
            chunks = review_export.json_chunks(project)
            content_type, name = "application/json", f"{project.slug}-reviews.json"
        # Under ASGI (Daphne) Django would read a plain iterator to the end before sending
        # a byte; an async iterator streams. Under WSGI (and the test client) the reverse.
        content = aiter_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
        response = StreamingHttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # ``response`` is the streamed export when all went well (the stubs say Response).
        return json_errors(super().finalize_response(request, response, *args, **kwargs))
