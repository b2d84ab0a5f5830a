"""The groups: created by the data migration and filled after every migrate, idempotently."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from custsync_project import roles
from custsync_project.roles import ROLES, STEWARDS, SUPPORT, roles_sync

pytestmark = pytest.mark.django_db


def _perms(name):
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=name).permissions.select_related("content_type")}


def test_the_test_database_built_by_migrate_has_both_groups_complete():
    assert _perms(STEWARDS) == set(ROLES[STEWARDS])
    assert _perms(SUPPORT) == set(ROLES[SUPPORT])


def test_sync_is_idempotent_and_keeps_manual_additions():
    from django.contrib.auth.models import Permission

    extra = Permission.objects.get(codename="view_logentry")
    Group.objects.get(name=SUPPORT).permissions.add(extra)
    assert roles_sync() == {STEWARDS: [], SUPPORT: []}
    assert roles_sync() == {STEWARDS: [], SUPPORT: []}
    assert Group.objects.filter(name__in=[STEWARDS, SUPPORT]).count() == 2
    assert "admin.view_logentry" in _perms(SUPPORT)


def test_permissions_of_missing_apps_are_skipped_not_fatal(monkeypatch):
    monkeypatch.setitem(roles.ROLES, SUPPORT, [*ROLES[SUPPORT], "billing.view_invoice"])
    missing = roles_sync()
    assert missing[SUPPORT] == ["billing.view_invoice"]
    assert "webhooks.replay_inboxevent" in _perms(SUPPORT)


def test_groups_on_a_fresh_empty_database(tmp_path):
    """`migrate` on an empty SQLite file: the groups exist with every permission (migration + post_migrate)."""
    db = tmp_path / "empty.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{db}", "DJANGO_SETTINGS_MODULE": "custsync_project.settings",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    check = ("from django.contrib.auth.models import Group;"
             "from custsync_project.roles import ROLES;"
             "print(all(set(f'{p.content_type.app_label}.{p.codename}' for p in Group.objects.get(name=n)"
             ".permissions.all()) == set(ROLES[n]) for n in ROLES))")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v0", "-c", check], cwd=settings.BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr
    again = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
