"""The SCIM request path runs one way: endpoints → protocol → services → models."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import scim_server
from scim_server import errors as domain_errors
from scim_server.scim import errors as scim_errors

PACKAGE = Path(scim_server.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_services_import_neither_flask_nor_the_scim_layer() -> None:
    """Services take what they need as values: no Flask, no import back into scim/."""
    offenders = {
        path.name: sorted(
            m
            for m in imported_modules(path)
            if m.split(".")[0] == "flask" or m.startswith("scim_server.scim")
        )
        for path in sorted((PACKAGE / "services").glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_each_error_class_is_defined_once() -> None:
    """One hierarchy: scim/errors.py renders domain errors and adds only protocol-only ones."""

    def classes(module: object) -> set[str]:
        return {
            name
            for name, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, Exception)
            and value.__module__ == getattr(module, "__name__", None)
        }

    assert classes(domain_errors) & classes(scim_errors) == set()
    for name in classes(scim_errors):
        assert issubclass(getattr(scim_errors, name), domain_errors.DomainError), name
