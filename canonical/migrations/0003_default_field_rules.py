"""Default field rules (canonical.defaults.DEFAULT_RULES); existing rules are left as they are."""

from django.db import migrations

# Copied, not imported: a migration must not change when the module does.
DEFAULT_RULES = {
    "email": ("source_priority", ["crm", "shop", "support"]),
    "phone": ("source_priority", ["crm", "shop", "support", "erp"]),
    "first_name": ("source_priority", ["crm", "erp", "shop", "support"]),
    "last_name": ("source_priority", ["crm", "erp", "shop", "support"]),
    "locale": ("source_priority", ["crm", "shop", "support"]),
    "addresses.billing": ("source_priority", ["erp", "crm", "shop"]),
    "addresses.shipping": ("source_priority", ["shop", "crm", "erp"]),
    "marketing_opt_in": ("last_write_wins", ["cmp"]),
}


def create_defaults(apps, schema_editor):
    Rule = apps.get_model("canonical", "SourcePriorityRule")
    for field, (strategy, sources) in DEFAULT_RULES.items():
        Rule.objects.get_or_create(field=field, defaults={"strategy": strategy, "sources": sources})


def remove_defaults(apps, schema_editor):
    apps.get_model("canonical", "SourcePriorityRule").objects.filter(field__in=DEFAULT_RULES).delete()


class Migration(migrations.Migration):
    dependencies = [("canonical", "0002_golden_record")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
