"""Read API serializers: the export format, and provenance per field on the detail view."""

from rest_framework import serializers

from .fields import ADDRESS_TYPES, FIELDS, RULE_FIELDS, TEXT_KINDS, Field, Kind
from .selectors import customer_provenance, customer_snapshot


class AddressSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(ADDRESS_TYPES))
    line1 = serializers.CharField(allow_null=True)
    line2 = serializers.CharField(allow_null=True)
    postal_code = serializers.CharField(allow_null=True)
    city = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True, help_text="ISO 3166-1 alpha-2")


# The API field of each kind of golden column, and of each of custsync's own fields.
_BY_KIND = {
    **{kind: lambda **kw: serializers.CharField(allow_null=True, **kw) for kind in TEXT_KINDS},
    Kind.ADDRESSES: lambda **kw: AddressSerializer(many=True, **kw),
    Kind.CONSENT: lambda **kw: serializers.BooleanField(allow_null=True, **kw),
    Kind.CONSENT_AT: lambda **kw: serializers.DateTimeField(allow_null=True, **kw),
}
_META = {
    "id": lambda **kw: serializers.IntegerField(**kw),
    "version": lambda **kw: serializers.IntegerField(**kw),
    "external_ids": lambda **kw: serializers.DictField(child=serializers.CharField(), **kw),
    "deleted": lambda **kw: serializers.BooleanField(**kw),
    "updated_at": lambda **kw: serializers.DateTimeField(**kw),
    "last_source": lambda **kw: serializers.CharField(allow_null=True, **kw),
}


def _api_field(f: Field) -> serializers.Field:
    """Raises KeyError at import for a kind (or meta field) this module does not know yet."""
    make = _META[f.name] if f.kind == Kind.META else _BY_KIND[f.kind]
    return make(help_text=f.help_text) if f.help_text else make()


class _CustomerFields(serializers.Serializer):
    def to_representation(self, instance):
        return customer_snapshot(customer=instance)


# Built, not written out: one API field per snapshot field (`canonical.fields`), in the export's order.
CustomerSerializer = serializers.SerializerMetaclass(
    "CustomerSerializer", (_CustomerFields,),
    {"__module__": __name__, "__doc__": "One golden record as `export_customers` writes it, plus `last_source`.",
     **{f.name: _api_field(f) for f in FIELDS}},
)


class ProvenanceSerializer(serializers.Serializer):
    source = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    event_id = serializers.CharField()
    via = serializers.ChoiceField(choices=["event", "steward"], help_text="steward: an accepted conflict")


class CustomerDetailSerializer(CustomerSerializer):
    merged_into = serializers.IntegerField(allow_null=True, help_text="Set when merged into another customer.")
    provenance = serializers.DictField(
        child=ProvenanceSerializer(),
        help_text=f"Per field ({', '.join(RULE_FIELDS)}): where the golden value came from. "
                  "Fields without a value are absent.",
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["merged_into"] = instance.merged_into_id
        data["provenance"] = customer_provenance(customer=instance)
        return data
