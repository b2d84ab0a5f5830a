"""The inbox tasks moved from `custsync_project.pipeline` to `webhooks.processing`.

Schedules created before the move name the old module; django-q2 would fail
to import it on every run. Point them at the new one (and back on reverse).
"""

from django.db import migrations

OLD, NEW = "custsync_project.pipeline.", "webhooks.processing."


def _rename(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in Schedule.objects.filter(func__startswith=old):
        schedule.func = new + schedule.func[len(old):]
        schedule.save(update_fields=["func"])


def forwards(apps, schema_editor):
    _rename(apps, OLD, NEW)


def backwards(apps, schema_editor):
    _rename(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
