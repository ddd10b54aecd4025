"""Due credentials sends under several workers: each user's credentials are made exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from scim_server.db import db, utcnow
from scim_server.models import CredentialSchedule, CredentialSend, MailOutbox, UserPassword
from scim_server.services.passwords import Hashing
from scim_server.worker import Worker
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
