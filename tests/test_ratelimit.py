"""Per-token rate limits (scim_server.ratelimit), through the test client on both databases."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from scim_server import create_app, ratelimit
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import Organization
from scim_server.ratelimit import rate_limit_windows
from scim_server.services.tokens import create_token
from tests.support import USER_SCHEMA, Scim

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
# 15 s into a window: the next one starts in 45 s.
WINDOW = 28_000_000 * 60


@pytest.fixture
def clock(monkeypatch):
    """A settable clock, so that no test straddles a real minute boundary."""
    now = [WINDOW + 15.0]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


def set_limit(app, per_minute: int) -> None:
    app.config["RATE_LIMIT_PER_MINUTE"] = per_minute


def set_org_limit(session, org_id: str, per_minute: int | None) -> None:
    with session.begin():
        session.get(Organization, org_id).rate_limit_per_minute = per_minute


def statuses(scim: Scim, n: int) -> list[int]:
    return [scim.get("/scim/v2/Users").status_code for _ in range(n)]


def test_over_the_limit_is_429_with_scim_error_and_retry_after(app, scim, clock):
    """The request past the limit gets a SCIM Error (status "429") and Retry-After to the next window."""
    set_limit(app, 3)
    assert statuses(scim, 3) == [200, 200, 200]
    resp = scim.get("/scim/v2/Users")
    assert resp.status_code == 429
    assert resp.mimetype == "application/scim+json"
    assert resp.headers["Retry-After"] == "45"
    body = resp.get_json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == "429"
    assert "3 requests per minute" in body["detail"]


def test_next_window_serves_again_and_old_windows_are_swept(app, scim, session, clock):
    """A new minute starts a new count; windows two minutes old are deleted."""
    set_limit(app, 2)
    assert statuses(scim, 3) == [200, 200, 429]
    clock[0] += 44  # the last second of the window
    last = scim.get("/scim/v2/Users")
    assert last.headers.get("Retry-After") == "1", (last.status_code, last.get_json())
    clock[0] += 1
    assert statuses(scim, 3) == [200, 200, 429]
    clock[0] += 120
    assert statuses(scim, 1) == [200]
    starts = session.scalars(select(rate_limit_windows.c.window_start)).all()
    assert starts == [WINDOW + 180]


def test_writes_and_failed_requests_count(app, scim, session, clock):
    """A refused write still counts: the counter is committed before the request's work."""
    set_limit(app, 3)
    user = {"schemas": [USER_SCHEMA], "userName": "bjensen"}
    assert scim.post("/scim/v2/Users", user).status_code == 201
    assert scim.post("/scim/v2/Users", user).status_code == 409
    assert scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA]}).status_code == 400
    limited = scim.post("/scim/v2/Users", {**user, "userName": "other"})
    assert limited.status_code == 429
    assert limited.get_json()["status"] == "429"
    count = session.scalar(select(rate_limit_windows.c.count))
    assert count == 4


def test_each_token_has_its_own_budget(app, scim, session, clock):
    """Limits are per token: a second token of the same organization is not held back."""
    set_limit(app, 1)
    _token, secret = create_token(session, scim.org_id, "second")
    second = Scim(scim.client, secret, scim.org_id)
    assert statuses(scim, 2) == [200, 429]
    assert statuses(second, 2) == [200, 429]


def test_discovery_endpoints_are_not_counted(app, client, session, clock):
    """Public endpoints carry no token: nothing to count, nothing written."""
    set_limit(app, 1)
    for _ in range(3):
        assert client.get("/scim/v2/ServiceProviderConfig").status_code == 200
    assert session.scalar(select(func.count()).select_from(rate_limit_windows)) == 0


def test_organization_override(app, scim, other_scim, session, clock):
    """An organization's limit replaces the default; 0 is unlimited; NULL follows the default."""
    set_limit(app, 0)
    set_org_limit(session, scim.org_id, 2)
    assert statuses(scim, 3) == [200, 200, 429]
    assert statuses(other_scim, 5) == [200] * 5  # default: unlimited


def test_override_zero_is_unlimited_under_a_default(app, scim, other_scim, session, clock):
    set_limit(app, 2)
    set_org_limit(session, scim.org_id, 0)
    assert statuses(scim, 5) == [200] * 5
    assert statuses(other_scim, 3) == [200, 200, 429]


def test_overrides_are_reread_after_the_cache_time(app, scim, session, clock, monkeypatch):
    """Processes pick up a changed override within SCIM_RATE_LIMIT_CACHE_SECONDS."""
    monotonic = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: monotonic[0])
    assert statuses(scim, 3) == [200] * 3
    set_org_limit(session, scim.org_id, 1)
    monotonic[0] += app.extensions["scim_ratelimit"].cache_seconds
    assert statuses(scim, 2) == [200, 429]


def test_unlimited_when_off_costs_no_query(app, scim, connection, session, clock):
    """With no default and no override, a request runs no rate-limit statement at all."""
    assert app.config["RATE_LIMIT_PER_MINUTE"] == 0
    scim.get("/scim/v2/Users")  # loads the (empty) override cache
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_rest) -> None:
        seen.append(statement)

    event.listen(connection, "before_cursor_execute", listener)
    try:
        assert statuses(scim, 20) == [200] * 20
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    assert seen, "the listener saw the requests' own queries"
    assert not [s for s in seen if "rate_limit" in s]
    assert session.scalar(select(func.count()).select_from(rate_limit_windows)) == 0


# -- the command line (a fresh SQLite file) -----------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_cli_set_rate_limit(cli, clock):
    """org set-rate-limit NAME N sets the override; --default clears it; 0 is unlimited."""
    cli("org", "create", "acme")
    secret = cli("token", "create", "--org", "acme").output.strip()
    result = cli("org", "set-rate-limit", "acme", "2")
    assert result.exit_code == 0, result.output
    assert "2 requests per minute" in result.output
    headers = {"Authorization": f"Bearer {secret}"}
    client = create_app().test_client()
    codes = [client.get("/scim/v2/Users", headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]

    def stored() -> int | None:
        app = create_app()
        with db.reader(app)() as s:
            value = s.scalar(select(Organization.rate_limit_per_minute))
        db.engine(app).dispose()
        return value

    assert "unlimited" in cli("org", "set-rate-limit", "acme", "0").output
    assert stored() == 0
    assert cli("org", "set-rate-limit", "acme", "--default").exit_code == 0
    assert stored() is None


def test_cli_set_rate_limit_usage_errors(cli):
    cli("org", "create", "acme")
    assert cli("org", "set-rate-limit", "acme").exit_code == 2
    assert cli("org", "set-rate-limit", "acme", "5", "--default").exit_code == 2
    assert cli("org", "set-rate-limit", "acme", "-1").exit_code == 2
    unknown = cli("org", "set-rate-limit", "nope", "5")
    assert unknown.exit_code == 1
    assert "No organization" in unknown.output
