"""Create the "Data stewards" and "Support" groups (see custsync_project/roles.py).

Permissions of apps migrated in the same run do not exist yet when this runs
(Django creates them after all migrations): they are created here for the
models this migration can see, anything else is skipped, and the post_migrate
receiver in custsync_project/apps.py fills it in at the end of every migrate.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def forwards(apps, schema_editor):
    from custsync_project.roles import roles_sync

    using = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs have none; create_permissions skips those
        create_permissions(app_config, verbosity=0, interactive=False, using=using, apps=apps)
        app_config.models_module = None
    roles_sync(apps=apps, using=using)


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=["Data stewards", "Support"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
