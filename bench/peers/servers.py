"""How each server under comparison is started, addressed and answers."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.install import HOME, venv
from bench.servers import HOST

DJANGO_PROJECT = Path(__file__).resolve().parent / "django_project"


@dataclass(frozen=True)
class Dialect:
    """A server's base path and the statuses it answers a successful write with."""

    name: str
    base: str
    patch_user: int = 200
    patch_group: int = 204
    # The remove form it accepts: the value path (``members[value eq "x"]``) or
    # ``members`` with the member in ``value``.
    remove_by_value: bool = False
    notes: list[str] = field(default_factory=list)


OURS = Dialect("ours", "/scim/v2")
DJANGO = Dialect(
    "django-scim2",
    "/scim/v2",
    patch_group=200,
    remove_by_value=True,
    notes=[
        "django-scim2 answers 501 to a remove by value path (`members[value eq ...]`, "
        "Okta's form); the churn removes with `value` instead",
        "django-scim2 answers a group PATCH with the whole group, every member listed",
    ],
)
SCIM2 = Dialect(
    "scim2-server",
    "/v2",
    patch_user=204,
    notes=[
        "scim2-server keeps everything in memory in one process (no workers, nothing "
        "durable); it refuses `remove` with a `value` (400)"
    ],
)


def scim2_server_argv(port: int, token: str) -> list[str]:
    bin_dir = venv("scim2-server")
    return [str(bin_dir / "scim2-server"), "--hostname", HOST, "--port", str(port),
            "--bearer-token", token]  # fmt: skip


def django_project(backend: str) -> Path:
    """A fresh copy of the glue project, with its models' migrations made and applied."""
    work = HOME / f"django-{backend}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(DJANGO_PROJECT, work, ignore=shutil.ignore_patterns("__pycache__"))
    return work


def django_prepare(work: Path, env: dict[str, str]) -> None:
    python = str(venv("django-scim2") / "python")
    for argv in (["makemigrations", "peerapp"], ["migrate"]):
        subprocess.run(
            [python, "-m", "django", *argv, "--settings", "settings", "-v", "0"],
            cwd=work, env=env, check=True,
        )  # fmt: skip


def django_argv(port: int) -> list[str]:
    """gunicorn as ours runs: two sync workers, one thread each."""
    gunicorn = str(venv("django-scim2") / "gunicorn")
    return [gunicorn, "--workers", "2", "--threads", "1", "--worker-class", "sync",
            "--bind", f"{HOST}:{port}", "wsgi:application"]  # fmt: skip
