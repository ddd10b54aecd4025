"""``scim-server worker``: claims with row locks, retries with backoff, hands back on stop; sends mail."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

from scim_server.config import SmtpSettings
from scim_server.db import db, utcnow
from scim_server.mailer import Mailer
from scim_server.models import CredentialSchedule, Job, MailOutbox
from scim_server.services import jobs, mail_delivery
from scim_server.services.mail import queue_mail
from scim_server.worker import Worker
from tests.support import Clock

KIND = "test.record"


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[str, str]]:
    """A job kind that records (job id, worker id) in two steps; yields the record."""
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(job_run: jobs.JobRun) -> dict[str, Any]:
        with job_run.step() as (_session, job):
            job.progress_total = 2
            job.progress_done = 1
        time.sleep(0.01)  # widen the window in which a second worker could take it
        with job_run.step() as (_session, job):
            job.progress_done = 2
        with lock:
            seen.append((job_run.job_id, job_run.worker_id))
        return {"ok": True}

    monkeypatch.setitem(jobs.KINDS, KIND, jobs.JobKind(KIND, run=run))
    return seen


def _enqueue(factory, org_id: str, count: int, kind: str = KIND) -> list[str]:
    with factory() as session, session.begin():
        return [jobs.enqueue(session, org_id, kind, {"n": i}).id for i in range(count)]


def test_concurrent_workers_never_run_one_job_twice(live, recorded):
    """Four workers on real connections share 24 jobs; each runs exactly once."""
    app, scim = live
    writer = db.writer(app)
    ids = _enqueue(writer, scim.org_id, 24)
    workers = [Worker(writer, worker_id=f"w{i}") for i in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(worker: Worker) -> None:
        start.wait()
        try:
            worker.run_once()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(job_id for job_id, _ in recorded) == sorted(ids)
    with writer() as session:
        rows = session.scalars(select(Job).where(Job.org_id == scim.org_id)).all()
        assert {(r.state, r.attempts, r.progress_done) for r in rows} == {("succeeded", 1, 2)}
        assert {r.claimed_by for r in rows} == {w for _, w in recorded}
        session.execute(delete(Job).where(Job.org_id == scim.org_id))
        session.commit()


def test_postgresql_claim_skips_a_locked_job_without_waiting(live, recorded):
    """PostgreSQL: a job row locked by another transaction is skipped (SKIP LOCKED), not waited on."""
    app, scim = live
    writer = db.writer(app)
    if writer.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite serialises claims with its database lock (BEGIN IMMEDIATE)")
    first, second = _enqueue(writer, scim.org_id, 2)
    with writer() as holder, holder.begin():
        holder.scalar(select(Job).where(Job.id == first).with_for_update())
        started = time.monotonic()
        claimed = jobs.claim(writer, "other", now=utcnow() + timedelta(seconds=1))
        assert time.monotonic() - started < 2
        assert claimed is not None and claimed.id == second
        assert jobs.claim(writer, "third", now=utcnow() + timedelta(seconds=1)) is None
    with writer() as session, session.begin():
        session.execute(delete(Job).where(Job.org_id == scim.org_id))


def test_sqlite_claims_queue_on_the_database_lock(live, recorded):
    """SQLite: while another writer holds the lock a claim waits, then sees the job taken."""
    app, scim = live
    writer = db.writer(app)
    if writer.kw["bind"].dialect.name != "sqlite":
        pytest.skip("PostgreSQL uses row locks (see the SKIP LOCKED test)")
    (job_id,) = _enqueue(writer, scim.org_id, 1)
    result: list[Any] = []
    holder = writer()
    holder.begin()
    holder.scalar(select(Job).where(Job.id == job_id))  # BEGIN IMMEDIATE: the write lock
    thread = threading.Thread(
        target=lambda: result.append(jobs.claim(writer, "other", now=utcnow() + timedelta(1)))
    )
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waiting for the lock
    row = holder.get(Job, (scim.org_id, job_id))
    row.state, row.claimed_by = "running", "holder"
    row.lease_expires_at = utcnow() + timedelta(days=2)
    holder.commit()
    holder.close()
    thread.join(15)
    assert result == [None]
    with writer() as session, session.begin():
        session.execute(delete(Job).where(Job.org_id == scim.org_id))


def test_a_failing_job_is_retried_with_backoff_then_fails(app, scim, monkeypatch):
    """An error requeues the job with a growing delay; after max attempts it is failed."""
    calls: list[int] = []
    failures: list[str] = []

    def run(job_run: jobs.JobRun) -> dict[str, Any]:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("connection reset"))

    def on_failure(session, job, error) -> None:
        failures.append(f"{job.attempts}: {error}")

    monkeypatch.setitem(jobs.KINDS, "test.flaky", jobs.JobKind("test.flaky", run, on_failure))
    writer = db.writer(app)
    with writer() as session, session.begin():
        job_id = jobs.enqueue(session, scim.org_id, "test.flaky", max_attempts=3).id
    clock = Clock()
    worker = Worker(writer, clock=clock)
    assert worker.run_once() == 1
    with writer() as session:
        job = session.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts, job.claimed_by) == ("queued", 1, None)
        assert job.run_after == clock.now + timedelta(seconds=10)
        assert "connection reset" in job.error
    clock.advance(9)
    assert worker.run_once() == 0
    clock.advance(2)
    assert worker.run_once() == 1
    clock.advance(21)
    assert worker.run_once() == 1
    with writer() as session:
        job = session.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts) == ("failed", 3)
    assert len(calls) == 3 and len(failures) == 1 and failures[0].startswith("3: ")


def test_a_stopping_worker_hands_the_job_back(app, scim, recorded):
    """SIGTERM between steps: the job is queued again at once, the attempt not counted."""
    writer = db.writer(app)
    (job_id,) = _enqueue(writer, scim.org_id, 1)
    stopping = Worker(writer, worker_id="stopping")

    def stop_after_first_step(done: int, total: int | None) -> None:
        stopping.stop.set()

    assert stopping.run_job(job_id, on_progress=stop_after_first_step)
    with writer() as session:
        job = session.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts, job.progress_done) == ("queued", 0, 1)
    assert Worker(writer, worker_id="next").run_once() == 1
    assert recorded == [(job_id, "next")]


def test_worker_command_once(tmp_path, monkeypatch):
    """``scim-server worker --once`` migrates, runs what is due and says how many."""
    from scim_server.cli import main

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    runner = CliRunner()
    result = runner.invoke(main, ["worker", "--once"], catch_exceptions=False)
    assert (
        result.exit_code == 0
        and "ran 0 job(s)" in result.output
        and "handled 0 mail(s)" in result.output
    )


def test_the_loop_backs_off_while_the_database_is_down(app, monkeypatch, caplog):
    """Claims failing with OperationalError: the loop keeps going, waiting longer each time."""
    worker = Worker(db.writer(app))
    calls: list[float] = []

    def claim(*args: Any, **kwargs: Any) -> None:
        calls.append(time.monotonic())
        if len(calls) == 4:
            worker.stop.set()
        raise OperationalError("SELECT jobs", {}, Exception("connection refused"))

    monkeypatch.setattr(jobs, "claim", claim)
    worker.serve(poll_interval=0.05)
    assert len(calls) == 4
    waits = [b - a for a, b in itertools.pairwise(calls)]
    assert waits[0] >= 0.1 and waits[1] >= 0.2 and waits[2] >= 0.4
    assert caplog.text.count("database unavailable") == 4


def test_a_worker_leaves_kinds_it_does_not_know(app, scim):
    """A job of a kind this worker lacks (a newer version's) stays queued for another worker."""
    writer = db.writer(app)
    (job_id,) = _enqueue(writer, scim.org_id, 1, kind="test.from-a-newer-version")
    assert Worker(writer).run_once() == 0
    with writer() as session:
        job = session.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts) == ("queued", 0)


def test_a_job_whose_workers_keep_dying_is_failed(app, scim, monkeypatch):
    """Lease expired once more than max_attempts allow: failed, and its kind logs the end."""
    failures: list[str] = []

    def never_run(job_run: jobs.JobRun) -> dict[str, Any]:
        raise AssertionError("must not run again")

    def on_failure(session, job, error) -> None:
        failures.append(error)

    monkeypatch.setitem(jobs.KINDS, "test.dies", jobs.JobKind("test.dies", never_run, on_failure))
    writer = db.writer(app)
    with writer() as session, session.begin():
        job_id = jobs.enqueue(session, scim.org_id, "test.dies", max_attempts=1).id
    clock = Clock()
    assert jobs.claim(writer, "dead", now=clock()) is not None  # then its process died
    clock.advance(120)
    assert Worker(writer, clock=clock).run_once() == 1
    with writer() as session:
        job = session.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts) == ("failed", 2)
    assert failures == ["gave up after 1 attempts whose workers stopped"]


# -- mail -----------------------------------------------------------------------------

MAIL_CONTEXT = {"login_url": "https://id.example.com/sso/login", "username": "bob"}


def _queue_mail(factory, org_id: str, count: int) -> list[str]:
    with factory() as session, session.begin():
        return [
            queue_mail(session, org_id, "password_changed", f"u{i}@example.com", MAIL_CONTEXT).id
            for i in range(count)
        ]


def _smtp_mailer(port: int, tmp_path) -> Mailer:
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="plain")
    return Mailer(sender="it@acme.example", smtp=smtp, mail_dir=tmp_path, timeout=10)


def test_concurrent_workers_never_send_one_mail_twice(live, smtp, tmp_path):
    """Four workers on real connections share 20 mails: the SMTP server gets each exactly once."""
    app, scim = live
    recorder, port = smtp
    writer = db.writer(app)
    ids = _queue_mail(writer, scim.org_id, 20)
    workers = [
        Worker(writer, worker_id=f"m{i}", mailer=_smtp_mailer(port, tmp_path)) for i in range(4)
    ]
    handled: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def work(worker: Worker) -> None:
        start.wait()
        try:
            handled.append(worker.send_mail())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sum(handled) == 20
    assert sorted(m["To"] for m in recorder.messages) == sorted(
        f"u{i}@example.com" for i in range(20)
    )
    with writer() as session:
        rows = session.scalars(select(MailOutbox).where(MailOutbox.org_id == scim.org_id)).all()
        assert sorted(r.id for r in rows) == sorted(ids)
        assert {(r.state, r.attempts) for r in rows} == {("sent", 1)}
        assert sorted(r.message_id for r in rows) == sorted(
            m["Message-ID"] for m in recorder.messages
        )
        session.execute(delete(MailOutbox).where(MailOutbox.org_id == scim.org_id))
        session.commit()


def test_postgresql_mail_claim_skips_a_locked_mail_without_waiting(live, tmp_path):
    """PostgreSQL: a mail row locked by another transaction is skipped (SKIP LOCKED), not waited on."""
    app, scim = live
    writer = db.writer(app)
    if writer.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite serialises claims with its database lock (BEGIN IMMEDIATE)")
    first, second = _queue_mail(writer, scim.org_id, 2)
    now = utcnow() + timedelta(seconds=1)
    with writer() as holder, holder.begin():
        holder.scalar(select(MailOutbox).where(MailOutbox.id == first).with_for_update())
        started = time.monotonic()
        claimed = mail_delivery.claim_mail(writer, "other", now=now, domain="acme.example")
        assert time.monotonic() - started < 2
        assert claimed is not None and claimed.id == second
        assert mail_delivery.claim_mail(writer, "third", now=now, domain="x") is None
    with writer() as session, session.begin():
        session.execute(delete(MailOutbox).where(MailOutbox.org_id == scim.org_id))


def test_a_mail_whose_worker_died_is_sent_by_another(app, scim, smtp, tmp_path):
    """Claimed, then its worker died: after the lease it goes out once, with the same Message-ID."""
    recorder, port = smtp
    writer = db.writer(app)
    (mail_id,) = _queue_mail(writer, scim.org_id, 1)
    clock = Clock()
    dead = mail_delivery.claim_mail(writer, "dead", now=clock(), domain="acme.example")
    assert dead is not None and dead.id == mail_id
    worker = Worker(writer, worker_id="next", clock=clock, mailer=_smtp_mailer(port, tmp_path))
    assert worker.send_mail() == 0  # the lease still holds
    clock.advance(mail_delivery.LEASE.total_seconds() + 1)
    assert worker.send_mail() == 1
    (message,) = recorder.messages
    assert message["Message-ID"] == dead.message_id
    with writer() as session:
        mail = session.get(MailOutbox, (scim.org_id, mail_id))
        assert (mail.state, mail.attempts, mail.claimed_by) == ("sent", 2, None)
    # The dead worker's late outcome changes nothing: the mail is no longer its own.
    assert mail_delivery.record_outcome(writer, dead, "dead", clock(), "late") == "sent"


def test_worker_command_once_writes_eml_without_smtp(tmp_path, monkeypatch):
    """``scim-server worker --once`` with no SMTP: the mail becomes an .eml in SCIM_MAIL_DIR."""
    from scim_server import create_app
    from scim_server.cli import main

    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("SCIM_DATABASE_URL", url)
    monkeypatch.setenv("SCIM_MAIL_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("SCIM_SMTP_URL", raising=False)
    runner = CliRunner()
    org_id = runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False).output.strip()
    app = create_app()
    try:
        (mail_id,) = _queue_mail(db.writer(app), org_id, 1)
    finally:
        db.engine(app).dispose()
    result = runner.invoke(main, ["worker", "--once"], catch_exceptions=False)
    assert (
        result.exit_code == 0
        and "ran 0 job(s)" in result.output
        and "handled 1 mail(s)" in result.output
    )
    eml = (tmp_path / "mail" / f"{mail_id}.eml").read_text()
    assert "Subject: Your acme password was changed" in eml and "To: u0@example.com" in eml


def test_the_worker_refreshes_statistics_a_growing_table_outran(live) -> None:
    """Thousands of single creates (an IdP's initial sync) leave a table planned as it was
    at its last ANALYZE: the worker ANALYZEs a table that changed past autovacuum's own
    threshold since then, at most every ``STALE_CHECK_EVERY``; on SQLite it leaves
    statistics to the connections' ``PRAGMA optimize``."""
    from sqlalchemy import text

    from scim_server.models import Contact
    from scim_server.services import table_stats

    app, scim = live
    engine = db.engine(app)
    clock = Clock()
    worker = Worker(db.writer(app), clock=clock)
    if engine.dialect.name != "postgresql":
        assert worker.refresh_statistics() == []
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE contacts"))
        known = conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'contacts'::regclass"))
    many = table_stats.STALE_ROWS + 1 + int(table_stats.STALE_FRACTION * max(known, 0))
    now = utcnow()
    rows = [
        {
            "org_id": scim.org_id,
            "id": f"c-{i}",
            "kind": "person",
            "name": f"P {i}",
            "name_key": f"p {i}",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(many)
    ]
    with engine.begin() as conn:
        conn.execute(Contact.__table__.insert(), rows)
    engine.dispose()  # the backends report their counts as they end
    deadline = time.monotonic() + 10
    analyzed = worker.refresh_statistics()
    while "contacts" not in analyzed and time.monotonic() < deadline:
        time.sleep(0.2)
        clock.advance(table_stats.STALE_CHECK_EVERY.total_seconds())
        analyzed = worker.refresh_statistics()
    assert "contacts" in analyzed
    assert worker.refresh_statistics() == []  # checked a moment ago
    clock.advance(table_stats.STALE_CHECK_EVERY.total_seconds())
    assert "contacts" not in worker.refresh_statistics()  # analyzed since


def test_the_loop_works_in_rounds_and_sleeps_only_when_idle(app, scim, recorded, monkeypatch):
    """``serve`` takes at most ``ROUND`` of each kind a round and starts the next at once
    while there is work: a stream of one kind does not hold back the others until it
    ends, and nothing waits for the poll interval while work is due."""
    writer = db.writer(app)
    ids = _enqueue(writer, scim.org_id, 3)
    monkeypatch.setattr(Worker, "ROUND", 1)
    rounds: list[int] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            self.set()  # the first idle wait ends the loop
            return True

    worker = Worker(writer, stop=Stop())
    run_once = worker.run_once

    def counted(*, limit: int | None = None) -> int:
        handled = run_once(limit=limit)
        rounds.append(handled)
        return handled

    monkeypatch.setattr(worker, "run_once", counted)
    worker.serve(poll_interval=60)
    assert rounds == [1, 1, 1, 0]  # one job a round, no wait between, then idle
    assert sorted(job_id for job_id, _worker in recorded) == sorted(ids)


LONG = "test.long"


def _long_kind(monkeypatch, clock: Clock, batches: int, ran: list[str]) -> None:
    """A job of ``batches`` steps, each a minute on ``clock``, resumed from its checkpoint;
    ``ran`` gets the job's id at each step."""

    def run(job_run: jobs.JobRun) -> dict[str, Any]:
        while True:
            with job_run.step() as (_session, job):
                done = (job.checkpoint or {}).get("done", 0)
                if done == batches:
                    result = {"batches": done}
                    job_run.finish(job, result)
                    return result
                job.checkpoint = {"done": done + 1}
                job.progress_total, job.progress_done = batches, done + 1
                ran.append(job.id)
            clock.advance(60)

    monkeypatch.setitem(jobs.KINDS, LONG, jobs.JobKind(LONG, run=run))


def test_one_orgs_long_job_does_not_hold_back_another_orgs_reset_mail(
    app, scim, other_scim, client, smtp, tmp_path, monkeypatch
):
    """Organization A's big job (an import, a rules apply: many committed batches) runs;
    B's admin reset a password just before. The round runs A's job for its budget, hands
    it back at a step (no attempt counted) and goes on: B's link goes out in that round.
    The job resumes from its checkpoint on the next rounds and ends as one attempt."""
    from scim_server.services.tokens import create_token
    from tests.support import Scim
    from tests.support.admin_api import ok
    from tests.support.credentials import employee, mail_worker

    recorder, port = smtp
    clock = Clock()
    ran: list[str] = []
    _long_kind(monkeypatch, clock, 30, ran)
    with db.reader(app)() as s:
        _token, secret = create_token(s, other_scim.org_id, "b-admin", kind="admin")
    admin_b = Scim(client, secret, other_scim.org_id)
    user_b = employee(other_scim, "bea@globex.example")["id"]
    writer = db.writer(app)
    with writer() as s, s.begin():  # no welcome: the reset is B's only mail
        s.execute(delete(CredentialSchedule))
    ok(admin_b.post(f"/api/v1/users/{user_b}/password/reset", None), 202)
    with writer() as s, s.begin():
        job_id = jobs.enqueue(s, scim.org_id, LONG).id
    worker = mail_worker(app, port, tmp_path, clock)
    started = clock()
    worker.run_once(limit=Worker.ROUND)  # one of ``serve``'s rounds
    with writer() as s:
        (mail,) = s.scalars(
            select(MailOutbox).where(
                MailOutbox.org_id == other_scim.org_id, MailOutbox.kind == "password_reset"
            )
        ).all()
        job = s.get(Job, (scim.org_id, job_id))
        assert mail.sent_at is not None and mail.sent_at - started < timedelta(minutes=5)
        assert (job.state, job.attempts, job.progress_done) == ("queued", 0, 1)
    assert [m["To"] for m in recorder.messages] == ["bea@globex.example"]
    rounds = 1
    while worker.run_once(limit=Worker.ROUND):
        rounds += 1
    with writer() as s:
        job = s.get(Job, (scim.org_id, job_id))
        assert (job.state, job.attempts, job.result) == ("succeeded", 1, {"batches": 30})
        assert job.checkpoint == {"done": 30}
    assert len(ran) == 30 and rounds == 31  # a batch a round, then the step that ends it


def test_long_jobs_of_two_organizations_take_turns_round_by_round(
    app, scim, other_scim, monkeypatch
):
    """A job handed back goes behind the jobs already due: two organizations' long jobs
    get a round each in turn, neither waits for the other's end."""
    clock = Clock()
    ran: list[str] = []
    _long_kind(monkeypatch, clock, 3, ran)
    writer = db.writer(app)
    with writer() as s, s.begin():
        first = jobs.enqueue(s, scim.org_id, LONG).id
    clock.advance(1)
    with writer() as s, s.begin():
        second = jobs.enqueue(s, other_scim.org_id, LONG, run_after=clock()).id
    worker = Worker(writer, clock=clock)
    while worker.run_once(limit=Worker.ROUND):
        pass
    assert ran == [first, second] * 3


def test_a_round_handing_back_a_rules_apply_logs_no_resume(app, scim, admin, monkeypatch):
    """A rules apply handed back by each round (a budget of nothing: one batch a round)
    ends with every user done once, one ``ruleset.apply.started`` and no
    ``ruleset.apply.resumed`` (that one tells of a failure, a lost worker or a stop)."""
    from scim_server.services import rule_sets
    from tests.admin.rules import activate, catalogue
    from tests.support.admin_api import events, ok, person

    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(5)]
    activate(admin)
    job_id = ok(admin.post("/api/v1/rulesets/apply", None), 202)["id"]
    worker = Worker(db.writer(app), clock=Clock(), job_budget=timedelta(0))
    rounds = 0
    while ok(admin.get(f"/api/v1/jobs/{job_id}"))["state"] != "succeeded":
        worker.run_once(limit=Worker.ROUND)
        rounds += 1
        assert rounds < 10
    job = ok(admin.get(f"/api/v1/jobs/{job_id}"))
    assert job["result"] == {"users": 5, "evaluated": 5, "changed": 5} and job["attempts"] == 1
    assert rounds > 1
    for user in people:
        assert len(events(admin, action="user.mapping", resource_id=user["id"])) == 1
    assert len(events(admin, action="ruleset.apply.started")) == 1
    assert events(admin, action="ruleset.apply.resumed") == []


def test_run_once_without_a_limit_runs_a_job_to_its_end(app, scim, monkeypatch):
    """``worker --once`` (no limit): everything due, to its end; the budget is for rounds."""
    clock = Clock()
    ran: list[str] = []
    _long_kind(monkeypatch, clock, 5, ran)
    writer = db.writer(app)
    with writer() as s, s.begin():
        job_id = jobs.enqueue(s, scim.org_id, LONG).id
    assert Worker(writer, clock=clock).run_once() == 1
    with writer() as s:
        assert s.get(Job, (scim.org_id, job_id)).state == "succeeded"
    assert len(ran) == 5


def test_a_poison_job_fails_after_its_attempts_and_does_not_block_others(app, scim, monkeypatch):
    """A job failing at every attempt is retried with backoff while the others run; it
    ends failed after its attempts, and a job due later still runs at its time."""
    ran: list[str] = []

    def boom(run: jobs.JobRun) -> dict[str, Any]:
        raise RuntimeError("always")

    def fine(run: jobs.JobRun) -> dict[str, Any]:
        ran.append(run.job_id)
        return {}

    monkeypatch.setitem(jobs.KINDS, "test.boom", jobs.JobKind("test.boom", run=boom))
    monkeypatch.setitem(jobs.KINDS, "test.fine", jobs.JobKind("test.fine", run=fine))
    clock = Clock()
    writer = db.writer(app)
    with writer() as s, s.begin():
        bad = jobs.enqueue(s, scim.org_id, "test.boom").id
        good = jobs.enqueue(s, scim.org_id, "test.fine").id
        later = jobs.enqueue(s, scim.org_id, "test.fine", run_after=clock() + timedelta(hours=1)).id
    worker = Worker(writer, clock=clock)
    worker.run_once()
    assert ran == [good]
    for _ in range(10):
        clock.advance(400)
        worker.run_once()
    with writer() as s:
        row = s.get(Job, (scim.org_id, bad))
        assert (row.state, row.attempts) == ("failed", 5) and "always" in (row.error or "")
    assert ran == [good, later]
