"""The schedule data migration: old task paths follow the pump to webhooks.processing."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db(transaction=True)
def test_schedules_named_by_the_old_module_are_renamed_and_back():
    executor = MigrationExecutor(connection)
    django_q = ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")
    before = [("webhooks", "0001_initial"), django_q]
    after = [("webhooks", "0002_schedules_follow_the_moved_pump"), django_q]
    # given a schedule written before the move
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    Schedule = old_apps.get_model("django_q", "Schedule")
    Schedule.objects.create(name="inbox-sweep-old", func="custsync_project.pipeline.inbox_sweep",
                            schedule_type="I", minutes=1, repeats=-1)
    # when migrating forward
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new_apps = executor.loader.project_state(after).apps
    func = new_apps.get_model("django_q", "Schedule").objects.get(name="inbox-sweep-old").func
    # then it names the new module, and the task can be imported from it
    assert func == "webhooks.processing.inbox_sweep"
    from django.utils.module_loading import import_string
    assert callable(import_string(func))
    # and the migration reverses
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("django_q", "Schedule")
    assert old.objects.get(name="inbox-sweep-old").func == "custsync_project.pipeline.inbox_sweep"
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
