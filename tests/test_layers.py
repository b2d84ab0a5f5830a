"""Imports point down only (CONTRIBUTING.md, "Layers"); this test reads every module's imports.

Every `import` and `from ... import` is checked, those inside functions and
`if TYPE_CHECKING:` blocks included: an import inside a function is not a way
around a layer. Tests and benchmarks are callers of everything and are not
checked; migrations are.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each floor and the floors it may import. Nothing imports the roof.
ALLOWED = {
    "core": set(),
    "canonical": {"core"},
    "targets": {"core", "canonical"},
    "webhooks": {"core", "canonical", "targets"},  # the inbox pump hands canonical's changes to targets' enqueue
    "reconciliation": {"core", "canonical", "targets", "webhooks"},
    "custsync_project": {"core", "canonical", "targets", "webhooks", "reconciliation"},
}
FIRST_PARTY = set(ALLOWED)


def _modules():
    for package in sorted(ALLOWED):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "tests" in relative.parts:
                continue
            yield package, relative


def _imported_packages(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, first-party top-level package) for every import in the file; relative imports stay inside."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # `from . import x`, `from ..models import y`: the same package
                names = [package]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".", 1)[0]
            if top in FIRST_PARTY:
                found.append((node.lineno, top))
    return found


def _violations():
    for package, relative in _modules():
        for line, imported in _imported_packages(ROOT / relative, package):
            if imported != package and imported not in ALLOWED[package]:
                yield f"{relative}:{line} ({package}) imports {imported}"


def test_every_import_points_down_a_layer():
    assert list(_violations()) == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    # given a module that hides an upward import inside a function
    module = tmp_path / "hidden.py"
    module.write_text("def f():\n    from reconciliation.services import x\n    return x\n")
    # then the checker finds it
    assert _imported_packages(module, "canonical") == [(2, "reconciliation")]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_floor_exists_and_has_modules(package):
    assert any(p == package for p, _ in _modules())
