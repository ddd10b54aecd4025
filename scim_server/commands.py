"""What every ``scim-server`` command shares: the app, its sessions, organizations, errors.

Each package contributes a click group (``audit``, ``rules``, ``sso``, ``oauth``,
...) whose commands take a :class:`CommandEnv` through :func:`pass_env`;
``scim_server.cli`` lists the groups. Nothing here imports a package's
commands, so no module imports another's private helpers back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import click
from flask import Flask
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from scim_server.config import ConfigError
from scim_server.db import db
from scim_server.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class CommandEnv:
    """One command's application (built once per invocation) and what it needs of it."""

    app: Flask

    def session(self, *, write: bool = False) -> Session:
        """A session the caller's ``with`` closes.

        ``write`` takes SQLite's write lock at BEGIN (no lock upgrade to fail
        under a busy server); long reads such as ``audit verify`` must not.
        """
        return (db.writer if write else db.reader)(self.app)()

    def org_id(self, ref: str) -> str:
        """The id of the organization named or identified by ``ref``; a clear error if none."""
        from scim_server.services.organizations import find_organization

        with self.session() as session, domain_errors():
            return find_organization(session, ref).id

    def migrate(self) -> None:
        """Create or migrate the schema: every command works on a fresh database."""
        migrate_schema(db.engine(self.app))


def migrate_schema(engine: Engine) -> None:
    """``migrate.upgrade``; a database that cannot be used (unreachable, or migrated by a
    newer release) ends the command with one line and exit 1, not a traceback."""
    from scim_server.migrate import MigrationError, upgrade

    try:
        upgrade(engine)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None


def build_app() -> Flask:
    """The application from the environment; a configuration error is a clean CLI error."""
    from scim_server import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def pass_env(
    *, migrate: bool = True
) -> Callable[[Callable[Concatenate[CommandEnv, P], R]], Callable[P, R]]:
    """Give the command a :class:`CommandEnv` as its first argument, inside an app context.

    ``migrate`` (the default) brings the schema up to date first, as
    ``scim-server serve`` does, so a command never meets a missing table.
    """

    def decorator(command: Callable[Concatenate[CommandEnv, P], R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            _refuse_nul(kwargs)
            env = CommandEnv(build_app())
            try:
                if migrate:
                    env.migrate()
                with env.app.app_context():
                    return command(env, *args, **kwargs)
            finally:
                db.engine(env.app).dispose()

        return wrapper

    return decorator


def _refuse_nul(values: dict[str, Any]) -> None:
    """A usage error for an argument or option holding NUL, before any query sees it.

    PostgreSQL text cannot hold NUL: a name or id with one is refused by the driver
    (a traceback); the admin API refuses it in its own way, and so does every command.
    """
    ctx = click.get_current_context(silent=True)
    params = {p.name: p for p in ctx.command.params} if ctx is not None else {}
    for name, value in values.items():
        items = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise click.BadParameter(
                "NUL characters are not allowed.",
                ctx=ctx,
                param=params.get(name),
                param_hint=None if name in params else name,
            )


@contextmanager
def domain_errors() -> Iterator[None]:
    """A refused operation (``DomainError``) ends the command with its message and exit 1."""
    try:
        yield
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None


def not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: an option given as an empty or blank string is a usage error, not
    its absence (``--org ''`` verified every organization; ``--to-me ''`` mailed the user)."""
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty.", ctx=ctx, param=param)
    return value


def org_option(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--org NAME_OR_ID`` as every command spells it."""
    options: dict[str, Any] = {"required": True, "help": "Organization name or id."}
    options.update(kwargs)
    return click.option("--org", "org_ref", **options)
