"""Admin API: rules apply runs as a job — 202, the worker, progress, resume after a lost worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from scim_server.db import db
from scim_server.models import Job, RuleSet, User
from scim_server.services import jobs, rule_sets
from scim_server.worker import Worker
from tests.admin.rules import activate, catalogue
from tests.support import Clock
from tests.support.admin_api import apply_rules, events, ok, person


class WorkerDied(BaseException):
    """Stands for the process dying mid-job (not an error the worker could record)."""


def _worker(admin, name: str, clock: Clock) -> Worker:
    factory = db.writer(admin.client.application)
    return Worker(factory, worker_id=name, clock=clock, lease=timedelta(seconds=60))


def _sales_people(scim, count: int) -> list[dict]:
    return [person(scim, f"p{i:02d}@example.com", department="Sales") for i in range(count)]


def test_apply_answers_202_and_the_worker_does_it(scim, admin, session):
    """POST apply queues a job (202, Location); the worker runs it; GET shows the counts."""
    catalogue(admin)
    people = _sales_people(scim, 3)
    activate(admin)
    resp = admin.post("/api/v1/rulesets/apply", None)
    queued = ok(resp, 202)
    assert resp.headers["Location"] == f"/api/v1/jobs/{queued['id']}"
    assert queued["state"] == "queued" and queued["kind"] == "ruleset.apply"
    # Nothing happened inside the request.
    assert session.scalars(select(User.license_source)).all() == [None, None, None]
    assert ok(admin.get(resp.headers["Location"]))["state"] == "queued"
    assert events(admin, action="user.mapping") == []
    factory = db.writer(admin.client.application)
    assert Worker(factory).run_jobs() == 1
    job = ok(admin.get(resp.headers["Location"]))
    assert job["state"] == "succeeded" and job["error"] is None
    assert job["progress"] == {"done": 3, "total": 3}
    assert job["result"] == {"users": 3, "evaluated": 3, "changed": 3}
    assert job["started_at"] and job["finished_at"] and job["attempts"] == 1
    for user in people:
        (mapping,) = events(admin, action="user.mapping", resource_id=user["id"])
        assert mapping["actor_type"] == "admin" and mapping["detail"] == "rules re-applied"
        assert ok(admin.get(f"/api/v1/users/{user['id']}"))["license"]["value"] == "Planner"
    (started,) = events(admin, action="ruleset.apply.started")
    (finished,) = events(admin, action="ruleset.apply", outcome="success")
    assert started["seq"] < finished["seq"] and finished["actor_type"] == "admin"
    assert finished["changes"] == {
        "job_id": job["id"],
        "users_checked": 3,
        "users_total": 3,
        "users_evaluated": 3,
        "users_changed": 3,
    }


def test_a_job_is_only_visible_to_its_organization(scim, admin, other_scim, client):
    """Another organization's admin gets 404 for the job; no token is 401."""
    catalogue(admin)
    activate(admin)
    job = ok(admin.post("/api/v1/rulesets/apply", None), 202)
    from scim_server.services.tokens import create_token

    with db.reader(admin.client.application)() as s:
        _token, secret = create_token(s, other_scim.org_id, "other", kind="admin")
    other = client.get(f"/api/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {secret}"})
    assert other.status_code == 404
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 401
    assert admin.get("/api/v1/jobs/nope").status_code == 404


def test_nothing_to_apply_is_refused_at_once(admin, session):
    """With no active rules the request answers 409, queues nothing and logs the refusal."""
    resp = admin.post("/api/v1/rulesets/apply", None)
    assert resp.status_code == 409
    assert session.scalars(select(Job)).all() == []
    (failure,) = events(admin, action="ruleset.apply", outcome="failure")
    assert failure["status"] == 409


def test_a_job_whose_worker_died_is_resumed_where_it_got(scim, admin, session, monkeypatch):
    """Lease expired: another worker resumes from the checkpoint; no user is done twice."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin)
    people = _sales_people(scim, 5)
    activate(admin)
    job_id = ok(admin.post("/api/v1/rulesets/apply", None), 202)["id"]
    clock = Clock()
    first = _worker(admin, "first", clock)

    def die_after_one_batch(done: int, total: int | None) -> None:
        if done >= 2:
            raise WorkerDied

    with pytest.raises(WorkerDied):
        first.run_job(job_id, on_progress=die_after_one_batch)
    job = ok(admin.get(f"/api/v1/jobs/{job_id}"))
    assert job["state"] == "running" and job["progress"] == {"done": 2, "total": 5}
    second = _worker(admin, "second", clock)
    clock.advance(30)
    assert second.run_jobs() == 0  # the first worker's lease still holds
    clock.advance(60)
    assert second.run_jobs() == 1
    job = ok(admin.get(f"/api/v1/jobs/{job_id}"))
    assert job["state"] == "succeeded" and job["attempts"] == 2
    assert job["result"] == {"users": 5, "evaluated": 5, "changed": 5}
    for user in people:
        assert len(events(admin, action="user.mapping", resource_id=user["id"])) == 1
        assert ok(admin.get(f"/api/v1/users/{user['id']}"))["license"]["value"] == "Planner"
    (resumed,) = events(admin, action="ruleset.apply.resumed")
    assert "resumed after 2 users (2 changed)" in resumed["detail"]
    assert session.get(Job, (scim.org_id, job_id)).claimed_by == "second"
    # The first worker, back from the dead, may not write a step any more.
    run = jobs.JobRun(
        factory=first.factory,
        org_id=scim.org_id,
        job_id=job_id,
        kind="ruleset.apply",
        params={},
        worker_id="first",
    )
    with pytest.raises(jobs.LeaseLostError), run.step():
        pass


def test_a_job_that_cannot_run_fails_and_logs_how_far_it_got(scim, admin, session):
    """Rules deactivated before the worker runs: the job fails with its error and a failure event."""
    catalogue(admin)
    _sales_people(scim, 2)
    activate(admin)
    job_id = ok(admin.post("/api/v1/rulesets/apply", None), 202)["id"]
    session.execute(update(RuleSet).values(active=False))
    session.commit()
    factory = db.writer(admin.client.application)
    assert Worker(factory).run_jobs() == 1
    job = ok(admin.get(f"/api/v1/jobs/{job_id}"))
    assert job["state"] == "failed" and "Nothing to apply" in job["error"]
    assert job["attempts"] == 1 and job["finished_at"]
    (failure,) = events(admin, action="ruleset.apply", outcome="failure")
    assert "stopped after 0 of ? users (0 changed)" in failure["detail"]
    assert failure["changes"]["users_changed"] == 0 and failure["actor_type"] == "admin"


def test_apply_helper_runs_through_http(scim, admin):
    """Applying twice: the second run changes nothing and says so."""
    catalogue(admin)
    _sales_people(scim, 2)
    activate(admin)
    assert apply_rules(admin)["result"] == {"users": 2, "evaluated": 2, "changed": 2}
    assert apply_rules(admin)["result"] == {"users": 2, "evaluated": 0, "changed": 0}
