"""Read API: GET /api/customers/ (filters) and /api/customers/{id}/ (with provenance)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, IsAuthenticated

from . import normalizers
from .models import Customer
from .selectors import customer_list
from .serializers import CustomerDetailSerializer, CustomerSerializer

FILTERS = [
    OpenApiParameter("email", OpenApiTypes.STR, description="Exact email; trimmed and lower-cased like stored ones."),
    OpenApiParameter("phone", OpenApiTypes.STR, description="Phone number, normalized to E.164 like stored ones; "
                     "a national number needs `region`."),
    OpenApiParameter("region", OpenApiTypes.STR, description="Region for a national `phone`, e.g. DE."),
    OpenApiParameter("external_id", OpenApiTypes.STR, description="`system:value`, e.g. `shop:9981`."),
]


class CanViewCustomers(BasePermission):
    """Golden records are personal data: the same permission as the admin's customer pages."""

    def has_permission(self, request, view):
        return request.user.has_perm("canonical.view_customer")


class CustomerPagination(LimitOffsetPagination):
    # Bounded: one request cannot ask for the whole table, nor a LIMIT beyond bigint (a 500 on PostgreSQL).
    max_limit = 500


def _filters(params) -> dict:
    filters = {}
    for name in ("email", "phone", "region", "external_id"):
        # PostgreSQL refuses NUL in a text parameter: a 400 here, not a 500 in the query.
        if "\x00" in params.get(name, ""):
            raise ValidationError({name: "must not contain NUL characters"})
    if "email" in params:
        filters["email"] = params["email"].strip().lower()
    if "phone" in params:
        try:
            number, _warning = normalizers.normalize_phone(params["phone"], region=params.get("region", ""))
        except normalizers.NormalizationError as error:
            raise ValidationError({"phone": str(error)}) from None
        filters["phone"] = number or ""
    if "external_id" in params:
        system, sep, value = params["external_id"].partition(":")
        if not sep or not system or not value:
            raise ValidationError({"external_id": "expected system:value, e.g. shop:9981"})
        filters["external_id"] = (system.strip().lower(), value.strip())
    return filters


@extend_schema_view(
    list=extend_schema(summary="Golden records (active ones), filterable by identifier", parameters=FILTERS),
    retrieve=extend_schema(summary="One golden record with per-field provenance (tombstones too)"),
)
class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CustomerSerializer
    permission_classes = [IsAuthenticated, CanViewCustomers]
    pagination_class = CustomerPagination

    def get_serializer_class(self):
        return CustomerDetailSerializer if self.action == "retrieve" else CustomerSerializer

    def get_queryset(self):
        if self.action == "retrieve":
            return Customer.objects.prefetch_related("external_ids")
        return customer_list(**_filters(self.request.query_params))
