"""Storage: lookups IdPs make are index lookups, never table scans."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text

from scim_server.db import db
from scim_server.models import User
from scim_server.scim.filter_parser import parse_filter
from scim_server.scim.filters import FilterCompiler
from scim_server.scim.schema import USER
from tests.support.data import head_revision


def _plan(session, stmt) -> str:
    dialect = session.get_bind().dialect.name
    compiled = stmt.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    if dialect == "sqlite":
        rows = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        return "\n".join(str(r[-1]) for r in rows)
    session.execute(text("SET LOCAL enable_seqscan = off"))
    rows = session.execute(text(f"EXPLAIN {compiled}")).all()
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("filter_text", "index"),
    [
        ('userName eq "someone@example.com"', "uq_users_org_id_user_name_key"),
        ('externalId eq "abc"', "ix_users_org_id_external_id"),
        ('emails[type eq "work"].value eq "a@example.com"', "ix_attribute_values_lookup"),
        ('name.familyName sw "Jen"', "ix_attribute_values_lookup"),
    ],
)
def test_filters_use_an_index(scim, session, filter_text, index):
    """The plan for each IdP lookup uses the named index, not a scan of users."""
    for i in range(30):
        scim.create_user(
            f"user{i}@example.com",
            externalId=f"ext{i}",
            name={"familyName": f"Family{i}"},
            emails=[{"type": "work", "value": f"u{i}@x.org"}],
        )
    # Only this run's tables: a bare ANALYZE on PostgreSQL walks every schema of the
    # database and waits behind any other test run's locks.
    session.execute(text("ANALYZE users"))
    session.execute(text("ANALYZE attribute_values"))
    where = FilterCompiler(USER, scim.org_id).compile(parse_filter(filter_text))
    plan = _plan(session, select(User.id).where(User.org_id == scim.org_id, where))
    assert index in plan, plan
    assert "SCAN users" not in plan and "Seq Scan on users" not in plan, plan


def test_get_by_username_filter_issues_few_queries(scim, app, engine):
    """A userName eq lookup costs a constant, small number of statements."""
    for i in range(20):
        scim.create_user(f"q{i}@example.com")
    statements: list[str] = []
    conn = db.reader(app).kw["bind"]

    def count(*_args, **_kw):
        statements.append("x")

    event.listen(conn, "before_cursor_execute", count)
    try:
        resp = scim.get('/scim/v2/Users?filter=userName eq "q7@example.com"')
    finally:
        event.remove(conn, "before_cursor_execute", count)
    assert resp.get_json()["totalResults"] == 1
    # token lookup, count, page, groups and roles of the page (plus savepoint bookkeeping)
    assert len(statements) <= 9, statements


def test_db_upgrade_is_idempotent(engine):
    """Running the migrations again on a current database changes nothing and does not fail."""
    from scim_server.migrate import current_revision, upgrade

    before = current_revision(engine)
    upgrade(engine)
    assert current_revision(engine) == before == head_revision()


def test_migrations_match_the_models(engine):
    """The schema the migrations build is the one the models declare: no drift either way."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import sso.connections.models  # its tables are part of the schema too
    import sso.provider.models  # noqa: F401
    from scim_server.db import TRIGRAM_INDEXES, Base

    def declared_or_trigram(obj, name, type_, reflected, compare_to):
        # The search's trigram indexes exist on PostgreSQL only where pg_trgm may be created.
        return not (type_ == "index" and reflected and name in TRIGRAM_INDEXES)

    opts = {"include_object": declared_or_trigram}
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diffs == [], "\n".join(map(str, diffs))


def test_a_title_patch_rewrites_the_users_row_in_its_page(scim, session):
    """PostgreSQL: a PATCH of title (no indexed column of users) is a HOT update even in a
    page that creates filled: the fillfactor (migration 0026) left room for the new version,
    so none of the table's indexes gets an entry."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: fillfactor and HOT updates")
    place = text(
        "SELECT (ctid::text::point)[0]::int, (ctid::text::point)[1]::int FROM users "
        "WHERE org_id = :org_id AND id = :id"
    )
    counts = text(
        "SELECT pg_stat_get_xact_tuples_updated('users'::regclass), "
        "pg_stat_get_xact_tuples_hot_updated('users'::regclass)"
    )

    def create(i: int) -> tuple[str, int, int]:
        # About 1.3 kB a row: five or six to a page.
        user = scim.create_user(f"hot{i}@example.org", title="t" * 400)
        block, offset = session.execute(place, {"org_id": scim.org_id, "id": user["id"]}).one()
        return user["id"], block, offset

    made = [create(i) for i in range(2)]
    while made[-1][2] != 1:  # until a user opens a page: every row in it is this test's
        made.append(create(len(made)))
    first, page, _offset = made[-1]
    while made[-1][1] == page:  # until that page is full
        made.append(create(len(made)))
    updated, hot = session.execute(counts).one()
    resp = scim.patch_ops(
        f"/scim/v2/Users/{first}", {"op": "replace", "path": "title", "value": "x"}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["title"] == "x"
    assert tuple(session.execute(counts).one()) == (updated + 1, hot + 1)
    assert session.execute(place, {"org_id": scim.org_id, "id": first}).one()[0] == page
