"""The two working roles of the admin, as Django groups: "Data stewards" and "Support".

Groups are filled idempotently by `roles_sync`, called from the data migration
`custsync_project/migrations/0001_roles.py` and from a `post_migrate` receiver
(`custsync_project.apps`). Model permissions are created by Django's own
post_migrate handler, after all migrations: a permission that does not exist
yet (an app added later, a model not migrated yet) is skipped and added the
next time `migrate` runs. Permissions are only ever added, never removed, so a
superuser's manual additions to a group survive.

Superusers see everything; a staff user without a group sees nothing.
"""

from django.db import DEFAULT_DB_ALIAS

STEWARDS = "Data stewards"
SUPPORT = "Support"

# Not declared on a model's Meta (that would need a canonical migration): created here.
EXTRA_PERMISSIONS = {
    ("canonical", "customer", "resend_customer"): "Can resend customers to targets",
}

ROLES: dict[str, list[str]] = {
    STEWARDS: [
        # golden records and what hangs off them
        "canonical.view_customer", "canonical.view_externalid", "canonical.view_sourcevalue",
        "canonical.view_mergelog", "canonical.view_fieldoverride",
        # conflicts: see and decide
        "canonical.view_conflict", "canonical.resolve_conflict",
        # field rules: edit (add/delete stay with the sync config and superusers)
        "canonical.view_sourcepriorityrule", "canonical.change_sourcepriorityrule",
        # target field mappings
        "targets.view_target", "targets.view_targetfieldmapping", "targets.change_targetfieldmapping",
        "targets.add_targetfieldmapping", "targets.delete_targetfieldmapping",
        # the pipeline, read-only (to see what a rule change or a fix did)
        "webhooks.view_inboxevent", "webhooks.view_source",
        "targets.view_outboxmessage", "targets.view_deadletter", "targets.view_deliveryattempt",
        "targets.view_deliveredstate",
        # reconciliation: read reports, run fixes
        "reconciliation.view_reconciliationrun", "reconciliation.view_discrepancy",
        "reconciliation.fix_discrepancy",
    ],
    SUPPORT: [
        # the inbox: see and replay
        "webhooks.view_inboxevent", "webhooks.view_source", "webhooks.replay_inboxevent",
        # the outbox and dead letters: see, replay, discard
        "targets.view_target", "targets.view_outboxmessage", "targets.view_deadletter",
        "targets.view_deliveryattempt", "targets.view_deliveredstate",
        "targets.replay_outboxmessage", "targets.discard_outboxmessage",
        # targets' maintenance: pause, resume, resync
        "targets.pause_target", "targets.resync_target", "targets.view_targetresync",
        # customers: see and resend
        "canonical.view_customer", "canonical.view_externalid", "canonical.view_sourcevalue",
        "canonical.view_mergelog", "canonical.resend_customer",
    ],
}


def _extra_permissions_ensure(*, apps, using: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for (app_label, model, codename), name in EXTRA_PERMISSIONS.items():
        try:
            apps.get_model(app_label, model)
        except LookupError:
            continue
        content_type, _ = ContentType.objects.db_manager(using).get_or_create(app_label=app_label, model=model)
        Permission.objects.db_manager(using).get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name},
        )


def roles_sync(*, apps=None, using: str = DEFAULT_DB_ALIAS) -> dict[str, list[str]]:
    """Create the groups and add every role permission that exists; returns the ones still missing.

    Idempotent. `apps` is a migration's historical registry or the live one.
    """
    if apps is None:
        from django.apps import apps as live_apps

        apps = live_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    _extra_permissions_ensure(apps=apps, using=using)
    missing: dict[str, list[str]] = {}
    for name, perms in ROLES.items():
        group, _ = Group.objects.db_manager(using).get_or_create(name=name)
        wanted = {tuple(p.split(".", 1)) for p in perms}
        found = list(
            Permission.objects.db_manager(using)
            .filter(content_type__app_label__in={a for a, _ in wanted}, codename__in={c for _, c in wanted})
            .values_list("pk", "content_type__app_label", "codename")
        )
        found = [(pk, app, code) for pk, app, code in found if (app, code) in wanted]
        group.permissions.add(*[pk for pk, _, _ in found])
        have = {(app, code) for _, app, code in found}
        missing[name] = sorted(f"{a}.{c}" for a, c in wanted - have)
    return missing
