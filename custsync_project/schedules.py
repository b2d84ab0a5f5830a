"""The periodic tasks every deployment runs, kept in one place (ensured after `migrate` and by `setup_schedules`)."""

from django_q.models import Schedule


def schedules_ensure(*, specs: list[dict], using: str = "default") -> list[str]:
    """Create or update one django-q2 Schedule per spec, matched by name: running twice changes nothing."""
    lines = []
    schedules = Schedule.objects.using(using)
    for spec in specs:
        fields = {"func": spec["func"], "schedule_type": spec["schedule_type"], "repeats": -1}
        if spec["schedule_type"] == Schedule.MINUTES:
            fields["minutes"] = spec["minutes"]
        if spec["schedule_type"] == Schedule.CRON:
            fields["cron"] = spec["cron"]
        schedule, created = schedules.get_or_create(name=spec["name"], defaults=fields)
        changed = [key for key, value in fields.items() if getattr(schedule, key) != value]
        if changed:
            for key in changed:
                setattr(schedule, key, fields[key])
            schedule.save(using=using, update_fields=changed)
        state = "created" if created else ("updated " + ", ".join(changed) if changed else "unchanged")
        lines.append(f"schedule {spec['name']}: {state}")
    return lines
