"""``GET /api/v1/compare?a=&b=``: two runs of the project aligned step by step, and the
first step where their states diverge (``traces/compare.py``). A run of another project
is a 404, as everywhere."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import compare
from .auth import request_project
from .request import PROJECT_PARAM, get_run


class Compare(APIView):
    @extend_schema(
        operation_id="compare_runs",
        summary="Two runs aligned by node and occurrence, with the first state divergence",
        parameters=[
            PROJECT_PARAM,
            OpenApiParameter("a", str, required=True, description="Execution id of run a"),
            OpenApiParameter("b", str, required=True, description="Execution id of run b"),
            OpenApiParameter("offset", int, description="First row to return (default 0)"),
            OpenApiParameter(
                "limit",
                int,
                description=f"Rows to return (default {compare.ROWS_DEFAULT}, "
                f"at most {compare.ROWS_MAX}); row_count says how many there are",
            ),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="A missing or bad parameter"),
            404: OpenApiResponse(description="No such run in the project"),
        },
    )
    def get(self, request: Request) -> Response:
        request_project(request)  # an outsider's 404 comes before any 400
        a_id, b_id, window = compare.parse_request(request.query_params)
        run_a, run_b = get_run(request, a_id), get_run(request, b_id)
        found = compare.compare(run_a, run_b)
        return Response(compare.comparison_json(run_a, run_b, found, window))
