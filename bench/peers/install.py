"""Virtual environments for the peers, made once and reused while their requirements stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.measurements import log

HOME = Path(__file__).resolve().parent.parent / "results" / "peers"
REQUIREMENTS = {
    "django-scim2": ["django-scim2==0.23.0", "Django>=5.2,<6", "gunicorn", "psycopg[binary]"],
    "scim2-server": ["scim2-server==0.8.3"],
}


def venv(name: str) -> Path:
    """The ``bin`` directory of the peer's environment, created (pip from PyPI) if missing."""
    folder = HOME / name
    marker = folder / ".requirements"
    wanted = "\n".join(REQUIREMENTS[name])
    if marker.exists() and marker.read_text() == wanted:
        return folder / "bin"
    log(f"[peers] installing {name} into {folder}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *REQUIREMENTS[name]], check=True)
    marker.write_text(wanted)
    return folder / "bin"
