"""Secret references: config and database hold `${VAR}`, never the value.

A reference is resolved from the environment at the moment it is used, so a
rotated secret takes effect without re-importing anything, and the value never
reaches the database, a log line or an admin page.
"""

import os
import re

REFERENCE_PATTERN = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class SecretReferenceError(Exception):
    """A reference is malformed or names an environment variable that is not set."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and REFERENCE_PATTERN.match(value) is not None


def reference_variable(reference: str) -> str:
    """The variable name of `${NAME}`; raises for anything that is not a reference."""
    match = REFERENCE_PATTERN.match(reference or "")
    if match is None:
        raise SecretReferenceError(
            f"secret must be an environment reference like ${{NAME}}, got a literal value of {len(reference or '')} characters"
        )
    return match.group(1)


def resolve(reference: str) -> str:
    """The secret's value from the environment; the error names the missing variable."""
    name = reference_variable(reference)
    value = os.environ.get(name)
    if not value:
        raise SecretReferenceError(f"environment variable {name} is not set (referenced as ${{{name}}})")
    return value


def unset_variables_of(references) -> list[str]:
    """The variables that these `${NAME}` references name and the environment does not set (or sets empty).

    Literal values are passed over: the validators of the config and the admin refuse them.
    """
    unset = []
    for reference in references:
        try:
            name = reference_variable(reference)
        except SecretReferenceError:
            continue
        if not os.environ.get(name):  # resolve() treats an empty value as unset too
            unset.append(name)
    return unset
