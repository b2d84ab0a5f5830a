"""HTTP side of the gateway: transport checks (405, 413, 415), then one service call.

A DRF `APIView` so that drf-spectacular documents the endpoint, with every
DRF stage that could touch the body or answer in another shape switched off:
no authentication, parsers, throttles or content negotiation; every error,
DRF's own included, is `{"ok": false, "error": "..."}`.
"""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core import metrics

from . import openapi
from .errors import WebhookError
from .services import DUPLICATE_IGNORED, inbox_event_receive


def error_response(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": message}, status=status)


class _AlwaysJSON(BaseContentNegotiation):
    """Ignore the Accept header: the endpoint answers JSON, never 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _is_json_content_type(value: str) -> bool:
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def _read_body(request, limit: int) -> bytes:
    # At most limit + 1 bytes are read, whatever Content-Length says (or if it
    # is absent under ASGI), so an oversized body never fills memory.
    return request.read(limit + 1)


class CustomerWebhookView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = []
    throttle_classes = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AlwaysJSON
    http_method_names = ["post"]

    @extend_schema(
        operation_id="webhooks_customer_receive",
        summary="Receive a signed customer event",
        description=openapi.DESCRIPTION,
        request={"application/json": openapi.EnvelopeSerializer},
        parameters=openapi.HEADER_PARAMETERS,
        responses=openapi.RESPONSES,
        examples=[OpenApiExample("sample event (schema v1)", value=openapi.SAMPLE_EVENT, request_only=True)],
        auth=[],
        tags=["webhooks"],
    )
    def post(self, request):
        django_request = request._request
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        try:
            declared = int(django_request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._refuse(400, "Content-Length is not an integer")
        if declared > limit:
            return self._refuse(413, f"body is larger than {limit} bytes")
        content_type = django_request.META.get("CONTENT_TYPE", "")
        if not _is_json_content_type(content_type):
            return self._refuse(415, "Content-Type must be application/json")
        body = _read_body(django_request, limit)
        if len(body) > limit:
            return self._refuse(413, f"body is larger than {limit} bytes")

        try:
            result = inbox_event_receive(body=body, headers=django_request.headers)
        except WebhookError as exc:
            metrics.webhook_received(source=exc.source, outcome=str(exc.status_code))
            response = error_response(exc.status_code, exc.message)
            if exc.status_code == 503:
                response["Retry-After"] = "30"
            return response
        metrics.webhook_received(source=result.source, outcome="duplicate" if result.status == DUPLICATE_IGNORED else "accepted")
        return JsonResponse({"ok": True, "status": result.status, "event_id": result.event_id}, status=202)

    @staticmethod
    def _refuse(status: int, message: str) -> JsonResponse:
        metrics.webhook_received(source="", outcome=str(status))
        return error_response(status, message)

    def handle_exception(self, exc):
        # DRF's own refusals (405, ...) in the gateway's error shape.
        if isinstance(exc, APIException):
            response = error_response(exc.status_code, str(exc.detail))
            if getattr(exc, "wait", None):
                response["Retry-After"] = str(int(exc.wait))
            return response
        return super().handle_exception(exc)


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Anything else under /webhooks/: a JSON 404 (and no APPEND_SLASH redirect of a POST)."""
    return error_response(404, f"no endpoint at {request.path}; send POST /webhooks/customer (no trailing slash)")
