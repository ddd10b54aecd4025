"""The engine stays pure: importing it loads no web framework, database or sibling package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mappings

ROOT = Path(mappings.__file__).resolve().parents[1]
FORBIDDEN = {"flask", "sqlalchemy", "scim_server", "sso", "yaml"}


def test_import_loads_nothing_of_the_app():
    """A fresh interpreter importing mappings (and using JSON) loads none of the app's packages."""
    code = (
        "import sys, mappings\n"
        "mappings.validate(mappings.load('{\"rules\": []}', 'json'))\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(FORBIDDEN)!r}))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_yaml_is_loaded_only_when_used():
    """PyYAML is imported on the first YAML load, not before."""
    code = (
        "import sys, mappings\n"
        "assert 'yaml' not in sys.modules\n"
        "mappings.load('rules: []', 'yaml')\n"
        "assert 'yaml' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_source_files_import_only_the_standard_library():
    """No module of the package names an app package in an import statement."""
    for path in sorted((ROOT / "mappings").glob("*.py")):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in FORBIDDEN - {"yaml"}, f"{path.name}: {line}"
