"""Due credentials sends: under several workers each user's credentials are made exactly
once; a send "to me" is checked again when it goes out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update

from scim_server.db import db, utcnow
from scim_server.models import (
    AuditEvent,
    CredentialSchedule,
    CredentialSend,
    MailOutbox,
    UserPassword,
)
from scim_server.services import console_access
from scim_server.services.credential_schedules import send_due
from scim_server.services.passwords import Hashing
from scim_server.worker import Worker
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console
from tests.support.credentials import employee


def test_concurrent_workers_send_each_scheduled_credential_once(live):
    """Four workers on real connections share 12 due sends: one password and one mail per user."""
    app, scim = live
    ids = [employee(scim, f"w{i}@example.com")["id"] for i in range(12)]
    writer = db.writer(app)
    hashing = Hashing.from_config(app.config)
    workers = [Worker(writer, worker_id=f"c{i}", hashing=hashing) for i in range(4)]
    handled: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(worker: Worker) -> None:
        start.wait()
        try:
            handled.append(worker.send_credentials())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sum(handled) == 12
    with writer() as session:
        org = scim.org_id
        per_user = dict(
            session.execute(
                select(MailOutbox.user_id, func.count())
                .where(MailOutbox.org_id == org)
                .group_by(MailOutbox.user_id)
            ).all()
        )
        assert per_user == dict.fromkeys(ids, 1)
        sends = session.scalar(
            select(func.count()).select_from(CredentialSend).where(CredentialSend.org_id == org)
        )
        assert sends == 12
        assert (
            session.scalar(
                select(func.count()).select_from(UserPassword).where(UserPassword.org_id == org)
            )
            == 12
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(CredentialSchedule)
                .where(CredentialSchedule.org_id == org)
            )
            == 0
        )


def test_a_send_claimed_by_another_worker_is_left_alone(live):
    """A row under another worker's live lease is not taken; after the lease expires it is."""
    app, scim = live
    user_id = employee(scim, "lease@example.com")["id"]
    writer = db.writer(app)
    with writer() as session, session.begin():
        session.execute(
            update(CredentialSchedule)
            .where(CredentialSchedule.org_id == scim.org_id)
            .values(claimed_by="elsewhere", lease_expires_at=utcnow() + timedelta(minutes=1))
        )
    worker = Worker(writer, worker_id="me", hashing=Hashing.from_config(app.config))
    assert worker.send_credentials() == 0
    later = Worker(
        writer,
        worker_id="me",
        hashing=Hashing.from_config(app.config),
        clock=lambda: utcnow() + timedelta(minutes=2),
    )
    assert later.send_credentials() == 1
    with writer() as session:
        assert session.get(UserPassword, (scim.org_id, user_id)) is not None


def _no_welcomes(app: Flask, org_id: str) -> None:
    """Drop the welcome sends the SCIM creates queued: only the test's schedules wait."""
    with db.writer(app)() as s, s.begin():
        s.execute(delete(CredentialSchedule).where(CredentialSchedule.org_id == org_id))


def _schedule_to_me(app: Flask, client: FlaskClient, user_id: str) -> None:
    """The signed-in console person schedules ``user_id``'s credentials to themselves."""
    when = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    resp = client.post(
        f"/admin/users/{user_id}/credentials/schedule",
        data={"csrf_token": csrf_token(client), "send_at": when, "to": "me"},
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)


def _send_due(app: Flask) -> int:
    """The worker's pass at the send date (four days on)."""
    return send_due(
        db.writer(app),
        Hashing.from_config(app.config),
        "worker-1",
        lambda: datetime.now(UTC) + timedelta(days=4),
    )


def _mailed_to(app: Flask, org_id: str, recipient: str) -> set[str | None]:
    with db.reader(app)() as s:
        return set(
            s.scalars(
                select(MailOutbox.user_id).where(
                    MailOutbox.org_id == org_id, MailOutbox.recipient == recipient
                )
            )
        )


def _refusal(app: Flask, org_id: str, user_id: str) -> tuple[str, str | None, str | None]:
    """The schedule's state and error, and the failure event's detail."""
    with db.reader(app)() as s:
        row = s.get(CredentialSchedule, (org_id, user_id))
        event = s.scalar(
            select(AuditEvent.detail).where(
                AuditEvent.org_id == org_id,
                AuditEvent.resource_id == user_id,
                AuditEvent.action == "user.credentials.scheduled",
                AuditEvent.outcome == "failure",
            )
        )
    assert row is not None
    return row.state, row.last_error, event


def test_a_scheduled_send_to_me_does_not_deliver_an_admins_credentials_to_a_user_manager(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A user manager schedules two plain users' credentials "to me"; before the date one
    becomes org_admin. At the date only the other's go to the manager: the promoted
    account's send is refused (row failed with the reason, a failure event), as the
    console refuses "to me" on an account beyond one's roles when asked directly."""
    bob = employee(scim, "bob@example.com")["id"]
    carol = employee(scim, "carol@example.com")["id"]
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    _no_welcomes(app, scim.org_id)
    _schedule_to_me(app, client, bob)
    _schedule_to_me(app, client, carol)
    with db.reader(app)() as s:
        console_access.grant(s, scim.org_id, bob, "org_admin")
    assert _send_due(app) == 2
    assert _mailed_to(app, scim.org_id, "manager@example.com") == {carol}
    state, error, detail = _refusal(app, scim.org_id, bob)
    assert state == "failed" and "console roles beyond" in (error or "")
    assert detail and "console roles beyond" in detail
    with db.reader(app)() as s:
        assert s.get(UserPassword, (scim.org_id, bob)) is None  # no secret was made
    page = client.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert "Failed" in page and "console roles beyond" in page


def test_a_send_to_me_is_refused_once_its_scheduler_may_no_longer_manage_users(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The scheduler's user_manager role taken back (or their account deactivated, a
    leaver) before the date: nothing goes to their address."""
    bob = employee(scim, "bob@example.com")["id"]
    carol = employee(scim, "carol@example.com")["id"]
    manager = sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    other = app.test_client()
    leaver = sign_in_console(app, other, scim, "user_manager", "leaver@example.com")
    _no_welcomes(app, scim.org_id)
    _schedule_to_me(app, client, bob)
    _schedule_to_me(app, other, carol)
    with db.reader(app)() as s:
        console_access.grant(s, scim.org_id, manager, "auditor")
    with db.reader(app)() as s:
        console_access.revoke(s, scim.org_id, manager, "user_manager")
    gone = scim.patch_ops(
        f"/scim/v2/Users/{leaver}", {"op": "replace", "path": "active", "value": False}
    )
    assert gone.status_code == 200
    assert _send_due(app) == 2
    assert _mailed_to(app, scim.org_id, "manager@example.com") == set()
    assert _mailed_to(app, scim.org_id, "leaver@example.com") == set()
    for user_id in (bob, carol):
        state, error, _detail = _refusal(app, scim.org_id, user_id)
        assert state == "failed" and "no longer manages users" in (error or "")


def _welcome_due(app: Flask, org_id: str, user_id: str) -> None:
    """A welcome row due now, as a create leaves it (written here: the IdP's password no
    longer leaves one behind, but a row from before, or one a worker had claimed, stays)."""
    now = utcnow() - timedelta(seconds=1)
    with db.writer(app)() as s, s.begin():
        s.add(
            CredentialSchedule(
                org_id=org_id,
                user_id=user_id,
                send_at=now,
                base_url="https://id.example.com",
                reason="welcome",
                state="scheduled",
                attempts=0,
                created_at=now,
            )
        )


def test_a_welcome_for_an_account_with_a_password_of_its_own_is_dropped_not_sent(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """The worker comes to a welcome whose account got a password of its own meanwhile
    (the IdP's password sync): sending it would replace that password with a temporary
    one (or remove it for an activation link). It is dropped, the reason audited
    (``user.credentials.schedule.cancel``); no credentials are made, no mail queued."""
    from tests.support.admin_api import events
    from tests.support.credentials import password_verifies

    user_id = employee(scim, "gil@example.com")["id"]
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}",
        {"op": "replace", "path": "password", "value": "Correct-Horse-Battery-9"},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    _no_welcomes(app, scim.org_id)
    _welcome_due(app, scim.org_id, user_id)
    assert _send_due(app) == 1
    assert password_verifies(app, scim.org_id, user_id, "Correct-Horse-Battery-9")
    with db.reader(app)() as s:
        assert s.get(CredentialSchedule, (scim.org_id, user_id)) is None
        assert s.scalars(select(MailOutbox).where(MailOutbox.org_id == scim.org_id)).all() == []
    at_patch, at_send = events(
        admin, action="user.credentials.schedule.cancel", resource_id=user_id
    )
    assert "identity provider set the password" in at_patch["detail"]
    assert "password of its own" in at_send["detail"]


def test_one_orgs_welcome_backlog_does_not_hold_back_another_orgs(
    app: Flask, scim: Scim, other_scim: Scim
) -> None:
    """An initial sync's welcomes in one organization (each an argon2id hash at the
    worker), then one new user in another: organizations take turns, so the other's
    welcome is among the first two sent, not after the whole backlog."""
    backlog = [employee(scim, f"sync{i}@example.com")["id"] for i in range(4)]
    with db.writer(app)() as s, s.begin():
        s.execute(
            update(CredentialSchedule)
            .where(CredentialSchedule.org_id == scim.org_id)
            .values(send_at=utcnow() - timedelta(hours=1))
        )
    late = employee(other_scim, "new@globex.example")["id"]
    sent = send_due(
        db.writer(app),
        Hashing.from_config(app.config),
        "worker-1",
        lambda: datetime.now(UTC) + timedelta(seconds=1),
        limit=2,
    )
    assert sent == 2
    with db.reader(app)() as s:
        waiting = set(s.scalars(select(CredentialSchedule.user_id)))
    assert late not in waiting and len(waiting & set(backlog)) == 3


def test_the_turns_read_each_organizations_due_sends_by_index() -> None:
    """The organizations with due sends, each one's oldest and its claim are index seeks
    on (org_id, state, send_at): no statement reads every due send or sorts them (SQLite
    plans of an empty schema: no statistics)."""
    from typing import Any

    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import sessionmaker

    from scim_server.db import Base
    from scim_server.services import credential_schedules

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC)
    with factory() as s, s.begin():
        s.add(
            CredentialSchedule(
                org_id="o",
                user_id="u",
                send_at=now,
                base_url="https://id.example.com",
                reason="welcome",
                state="scheduled",
                attempts=0,
                created_at=now,
            )
        )
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM credential_schedules" in statement and statement.lstrip().startswith(
            ("SELECT", "WITH")
        ):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    # The send itself fails (no user, no organization): only the claim is looked at.
    credential_schedules.send_due(factory, Hashing(), "w", lambda: now, limit=1)
    event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        plans = [
            [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
            for sql, params in seen[:2]
        ]
    engine.dispose()
    orgs, claim = plans
    for plan in plans:
        reads = [step for step in plan if "credential_schedules" in step]
        assert reads and all(
            "ix_credential_schedules_org_id_state_send_at" in step for step in reads
        ), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
    assert any("(org_id>?)" in step for step in orgs), orgs
    assert any("(org_id=? AND state=? AND send_at<?)" in step for step in claim), claim


def test_a_welcome_for_a_user_deactivated_before_the_pass_is_not_sent(
    app: Flask, scim: Scim
) -> None:
    """The IdP creates a user and deactivates it before the worker's pass: no credentials
    are made (the row fails with the reason), no mail is queued."""
    user_id = employee(scim, "ian@example.com")["id"]
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "value": {"active": False}}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _send_due(app) == 1
    with db.reader(app)() as s:
        assert s.get(UserPassword, (scim.org_id, user_id)) is None
        assert s.scalars(select(MailOutbox).where(MailOutbox.org_id == scim.org_id)).all() == []
        row = s.get(CredentialSchedule, (scim.org_id, user_id))
        assert row is not None and row.state == "failed" and "DEACTIVATED" in (row.last_error or "")
