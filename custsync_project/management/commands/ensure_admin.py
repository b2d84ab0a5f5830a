"""Create (or leave alone) the development superuser; the password comes from an env variable."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a superuser if it does not exist yet, with the password taken from an environment variable."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-env", default="CUSTSYNC_ADMIN_PASSWORD",
                            help="Name of the environment variable holding the password.")

    def handle(self, *args, username, password_env, **options):
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"environment variable {password_env} is not set")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"superuser {username!r} exists")
            return
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"created superuser {username!r}"))
