"""Read API serializers: the export format, and provenance per field on the detail view."""

from rest_framework import serializers

from .selectors import customer_provenance, customer_snapshot


class AddressSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["billing", "shipping"])
    line1 = serializers.CharField(allow_null=True)
    line2 = serializers.CharField(allow_null=True)
    postal_code = serializers.CharField(allow_null=True)
    city = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True, help_text="ISO 3166-1 alpha-2")


class CustomerSerializer(serializers.Serializer):
    """One golden record as `export_customers` writes it, plus `last_source`."""

    id = serializers.IntegerField()
    version = serializers.IntegerField(help_text="Increments on every change.")
    external_ids = serializers.DictField(child=serializers.CharField(), help_text='System -> id, e.g. {"shop": "9981"}')
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True, help_text="E.164")
    first_name = serializers.CharField(allow_null=True)
    last_name = serializers.CharField(allow_null=True)
    locale = serializers.CharField(allow_null=True, help_text="BCP 47")
    addresses = AddressSerializer(many=True)
    marketing_opt_in = serializers.BooleanField(allow_null=True)
    marketing_opt_in_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField(help_text="Erased or merged away: a tombstone.")
    updated_at = serializers.DateTimeField()
    last_source = serializers.CharField(allow_null=True)

    def to_representation(self, instance):
        return customer_snapshot(customer=instance)


class ProvenanceSerializer(serializers.Serializer):
    source = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    event_id = serializers.CharField()
    via = serializers.ChoiceField(choices=["event", "steward"], help_text="steward: an accepted conflict")


class CustomerDetailSerializer(CustomerSerializer):
    merged_into = serializers.IntegerField(allow_null=True, help_text="Set when merged into another customer.")
    provenance = serializers.DictField(
        child=ProvenanceSerializer(),
        help_text="Per field (email, phone, first_name, last_name, locale, addresses.billing, addresses.shipping, "
                  "marketing_opt_in): where the golden value came from. Fields without a value are absent.",
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["merged_into"] = instance.merged_into_id
        data["provenance"] = customer_provenance(customer=instance)
        return data
