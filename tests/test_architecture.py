"""The rules of ARCHITECTURE.md, checked on the source: who may import whom.

Read from the files (``ast``), not from ``sys.modules``, so a rule holds for
imports inside functions too, and a new module is checked the day it lands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scim_server", "sso", "mappings")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


SOURCES = _sources()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = SOURCES[module].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str, *, top_level_only: bool) -> list[tuple[str, str | None]]:
    """(module imported, name imported from it or None) for each import in ``module``."""
    tree = ast.parse(SOURCES[module].read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[str, str | None]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in SOURCES:
                    found.append((submodule, None))
                else:
                    found.append((source, alias.name))
    return [(m, n) for m, n in found if m.split(".")[0] in PACKAGES]


def _own(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def test_no_module_imports_a_private_name_from_another() -> None:
    """``_name`` is private to its module: nothing of ours imports one from elsewhere."""
    offenders = sorted(
        f"{module} imports {name} from {source}"
        for module in SOURCES
        for source, name in _imports(module, top_level_only=False)
        if name is not None and name.startswith("_") and source != module
    )
    assert offenders == []


def test_no_private_modules_are_imported_across_packages() -> None:
    """A ``_module`` is imported only by its own package."""
    offenders = sorted(
        f"{module} imports {source}"
        for module in SOURCES
        for source, _name in _imports(module, top_level_only=False)
        if any(part.startswith("_") and part != "__init__" for part in source.split("."))
        and source.rsplit(".", 1)[0] != module.rsplit(".", 1)[0]
    )
    assert offenders == []


def test_no_import_cycles_between_our_modules() -> None:
    """The module-level import graph is acyclic (a deferred import must not hide a real cycle
    either: imports inside functions count too)."""
    graph = {
        module: {
            source
            for source, _name in _imports(module, top_level_only=False)
            if source in SOURCES
            and source != module
            # A package's __init__ importing its own submodules is how it exposes them.
            and not (SOURCES[module].name == "__init__.py" and source.startswith(module + "."))
            # A submodule importing its package __init__ for a name it defines is fine
            # when that __init__ does not import the submodule back (checked as a cycle).
        }
        for module in SOURCES
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize(
    ("package", "forbidden", "why"),
    [
        ("mappings", ("scim_server", "sso", "flask", "sqlalchemy"), "pure rules engine"),
        (
            "scim_server.services",
            ("flask", "scim_server.scim", "scim_server.admin", "sso"),
            "domain",
        ),
        (
            "scim_server.models",
            ("flask", "scim_server.services", "scim_server.scim", "sso"),
            "data",
        ),
        ("scim_server", ("sso",), "the host never reaches into sign-in, except to register it"),
    ],
)
def test_layers(package: str, forbidden: tuple[str, ...], why: str) -> None:
    """Imports point one way (ARCHITECTURE.md): views → services → models; sso → scim_server."""
    # The app factory and the command line register sso by name; the console is checked
    # by test_console_is_an_endpoint_layer (it reads the sign-in session).
    allowed = {"scim_server": {"scim_server", "scim_server.cli"}}
    offenders = sorted(
        f"{module} imports {source}"
        for module in SOURCES
        if module == package or module.startswith(package + ".")
        if module not in allowed.get(package, set())
        and not (package == "scim_server" and module.startswith(CONSOLE + "."))
        for source, _name in _imports(module, top_level_only=False)
        + [(m, None) for m in _third_party(module)]
        if any(source == f or source.startswith(f + ".") for f in forbidden)
    )
    assert offenders == [], why


CONSOLE = "scim_server.console"
# What the console may use of sso: who is signed in (and sign-out), the pages' headers,
# the IdP connections, domains and test mode for its single sign-on pages, the OIDC clients.
CONSOLE_SSO = (
    "sso.signin.session",
    "sso.signin.pages",
    "sso.signin.testmode",
    "sso.signin.domains",
    "sso.connections",
    "sso.provider.clients",
)
# The protocol endpoints and the admin API are siblings of the console, never its code path.
SCIM_ENDPOINTS = tuple(
    f"scim_server.scim.{name}"
    for name in ("blueprint", "auth", "users", "groups", "bulk", "search", "discovery_views")
)


def _in(source: str, prefixes: tuple[str, ...]) -> bool:
    return any(source == p or source.startswith(p + ".") for p in prefixes)


def test_console_is_an_endpoint_layer() -> None:
    """The console calls the services the admin API calls (no second code path): it imports
    no admin API, no SCIM endpoint, no SQLAlchemy (queries live in services), only the
    sign-in parts of sso; nothing but the app factory and the CLI imports it."""
    console = [m for m in SOURCES if m == CONSOLE or m.startswith(CONSOLE + ".")]
    assert console, "the console package moved: update this test"
    offenders = sorted(
        f"{module} imports {source}"
        for module in console
        for source in [s for s, _n in _imports(module, top_level_only=False)] + _third_party(module)
        if _in(source, ("scim_server.admin", *SCIM_ENDPOINTS, "sqlalchemy"))
        or (_in(source, ("sso",)) and not _in(source, CONSOLE_SSO))
    )
    assert offenders == []
    importers = sorted(
        module
        for module in SOURCES
        if not (module == CONSOLE or module.startswith(CONSOLE + "."))
        and module not in ("scim_server", "scim_server.cli")
        for source, _n in _imports(module, top_level_only=False)
        if _in(source, (CONSOLE,))
    )
    assert importers == []


def _third_party(module: str) -> list[str]:
    tree = ast.parse(SOURCES[module].read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if not _own(a.name)]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and not node.level
            and not _own(node.module)
        ):
            found.append(node.module)
    return found


def test_only_sso_saml_imports_the_saml_library() -> None:
    """python3-saml and xmlsec stay behind sso/saml/ (STYLE.md)."""
    offenders = sorted(
        module
        for module in SOURCES
        if not module.startswith("sso.saml")
        for source in _third_party(module)
        if source.split(".")[0] in ("onelogin", "xmlsec")
    )
    assert offenders == []
