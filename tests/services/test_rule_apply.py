"""``rules apply`` skips users whose rule inputs did not change, and only those."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from scim_server import bulk_rows
from scim_server.audit import queries as audit_queries
from scim_server.models import (
    AuditEvent,
    Contact,
    Event,
    GroupMember,
    Job,
    License,
    Role,
    User,
    UserRole,
)
from scim_server.services import rule_apply, rule_inputs, rule_sets
from tests.admin.rules import RULES, activate, catalogue
from tests.support.admin_api import (
    PRODUCT,
    account,
    apply_rules,
    events,
    licenses_by_name,
    make_license,
    make_role,
    ok,
    person,
    person_sorting_before,
    run_jobs,
)
from tests.support.faults import fail_product_events


def _result(admin) -> dict:
    job = apply_rules(admin)
    assert job["state"] == "succeeded", job
    return job["result"]


def _license(admin, user_id: str) -> str | None:
    lic = ok(admin.get(f"/api/v1/users/{user_id}"))["license"]
    return lic["value"] if lic else None


def test_users_provisioned_under_the_rules_are_skipped(scim, admin, session):
    """SCIM creates and updates store the hash: an apply right after evaluates no one."""
    catalogue(admin)
    activate(admin)
    sam = person(scim, "sam@example.com", department="Sales")
    person(scim, "olga@example.com", department="Ops")
    scim.patch_ops(f"/scim/v2/Users/{sam['id']}", {"op": "replace", "path": "title", "value": "VP"})
    stored = session.scalars(select(User.rules_input_hash)).all()
    assert len(stored) == 2 and all(len(h) == 64 for h in stored)
    assert _result(admin) == {"users": 2, "evaluated": 0, "changed": 0}
    assert _license(admin, sam["id"]) == "Planner"
    (finished,) = events(admin, action="ruleset.apply", outcome="success")
    assert finished["changes"]["users_evaluated"] == 0
    assert "0 evaluated, the others unchanged" in finished["detail"]


def test_a_user_whose_attributes_changed_is_evaluated(scim, admin, session):
    """Attributes changed without the rules running (stored directly): that user is evaluated."""
    catalogue(admin)
    activate(admin)
    sam = person(scim, "sam@example.com", department="Ops")
    person(scim, "olga@example.com", department="Ops")
    user = session.get(User, (scim.org_id, sam["id"]))
    data = dict(user.data)
    data["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = {"department": "Sales"}
    session.execute(update(User).where(User.id == sam["id"]).values(data=data))
    session.commit()
    assert _result(admin) == {"users": 2, "evaluated": 1, "changed": 1}
    assert _license(admin, sam["id"]) == "Planner"
    assert _result(admin) == {"users": 2, "evaluated": 0, "changed": 0}


def test_a_user_whose_groups_changed_is_evaluated(scim, admin, session):
    """A membership added behind the rules' back, and a group renamed: the members are evaluated
    (by the apply; a rename to a name the rules use, by the rename itself)."""
    catalogue(admin)
    activate(admin)
    eng = scim.create_group("Eng")
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com")
    person(scim, "cid@example.com")
    session.add(
        GroupMember(org_id=scim.org_id, group_id=eng["id"], member_id=ann["id"], member_type="User")
    )
    session.add(
        GroupMember(org_id=scim.org_id, group_id=eng["id"], member_id=bob["id"], member_type="User")
    )
    session.commit()
    # Members of "Eng": nothing in the rules yet, but their groups changed.
    assert _result(admin) == {"users": 3, "evaluated": 2, "changed": 0}
    assert _result(admin)["evaluated"] == 0
    # A rename the rules do not see: the apply evaluates the members, to no change.
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{eng['id']}",
        {"op": "replace", "path": "displayName", "value": "Platform"},
    )
    assert resp.status_code in (200, 204)
    assert _result(admin) == {"users": 3, "evaluated": 2, "changed": 0}
    # To the name a rule uses: the rename evaluates them (``groups.remap_renamed``).
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{eng['id']}",
        {"op": "replace", "path": "displayName", "value": "Engineering"},
    )
    assert resp.status_code in (200, 204)
    assert _license(admin, ann["id"]) == _license(admin, bob["id"]) == "Engineer"
    result = _result(admin)
    assert result["evaluated"] == 0 and result["changed"] == 0
    roles = session.scalars(
        select(UserRole.user_id).where(UserRole.source == "rule").order_by(UserRole.user_id)
    ).all()
    assert roles == sorted([ann["id"], bob["id"]])


def test_a_new_rule_set_re_evaluates_everyone(scim, admin, session):
    """Activating rules that say something else evaluates every user again."""
    catalogue(admin)
    activate(admin)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(3)]
    assert _result(admin)["evaluated"] == 0
    changed = {
        **RULES,
        "rules": [
            {
                "name": "sales",
                "when": {"attribute": "department", "equals": "Sales"},
                "then": {"license": "Engineer", "roles": ["Portal"]},
            }
        ],
    }
    activate(admin, changed)
    assert _result(admin) == {"users": 3, "evaluated": 3, "changed": 3}
    assert {_license(admin, p["id"]) for p in people} == {"Engineer"}
    for p in people:
        (mapping,) = events(admin, action="user.mapping", resource_id=p["id"])
        assert mapping["changes"]["roles.rule"]["added"]
    assert _result(admin) == {"users": 3, "evaluated": 0, "changed": 0}


def test_a_new_default_license_re_evaluates_everyone(scim, admin, session):
    """The settings' defaults are part of the rules as they run: changing one is a change."""
    catalogue(admin)
    activate(admin)
    ops = person(scim, "olga@example.com", department="Ops")
    assert _result(admin)["evaluated"] == 0
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    assert _result(admin) == {"users": 1, "evaluated": 1, "changed": 1}
    assert _license(admin, ops["id"]) == "Engineer"


def test_state_changed_behind_the_rules_is_restored(scim, admin, session):
    """A rule role removed and a contact field edited directly: the user is evaluated again."""
    catalogue(admin)
    contact_rules = {
        "mode": "first-match",
        "rules": [
            {
                "name": "sales",
                "when": {"attribute": "department", "equals": "Sales"},
                "then": {"roles": ["Portal"], "contact": {"title": "Seller"}},
            }
        ],
    }
    activate(admin, contact_rules)
    sam = person(scim, "sam@example.com", department="Sales")
    olga = person(scim, "olga@example.com", department="Sales")
    session.execute(delete(UserRole).where(UserRole.user_id == sam["id"]))
    contact_id = session.get(User, (scim.org_id, olga["id"])).contact_id
    session.execute(update(Contact).where(Contact.id == contact_id).values(title="Intern"))
    session.commit()
    assert _result(admin) == {"users": 2, "evaluated": 2, "changed": 2}
    assert session.scalar(select(UserRole.rule).where(UserRole.user_id == sam["id"])) == "sales"
    session.expire_all()
    assert session.get(Contact, (scim.org_id, contact_id)).title == "Seller"


def test_seats_are_counted_across_a_batch_and_a_waiting_user_is_always_evaluated(
    scim, admin, session
):
    """Three seats, five users in one batch: three get it, two wait; a freed seat goes next apply."""
    catalogue(admin, planner_seats=3)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(5)]
    activate(admin)
    assert _result(admin) == {"users": 5, "evaluated": 5, "changed": 5}
    holders = session.scalars(select(User.id).where(User.license_id.is_not(None))).all()
    waiting = session.scalars(select(User.id).where(User.license_wanted_id.is_not(None))).all()
    assert len(holders) == 3 and len(waiting) == 2
    assert session.scalars(select(User.rules_input_hash).where(User.id.in_(waiting))).all() == [
        None,
        None,
    ]
    # A holder leaves the license (deleted): one waiting user gets the seat on the next apply.
    assert scim.delete(f"/scim/v2/Users/{holders[0]}").status_code == 204
    # Both waiting users are evaluated: one gets the seat; the other still waits, unchanged
    # (no new shortage, no event).
    assert _result(admin) == {"users": 4, "evaluated": 2, "changed": 1}
    assert len(session.scalars(select(User.id).where(User.license_id.is_not(None))).all()) == 3
    assert {_license(admin, p["id"]) for p in people if p["id"] != holders[0]} == {
        "Planner",
        None,
    }


def test_batches_smaller_than_the_organization(scim, admin, session, monkeypatch):
    """Keyset batches: every user is checked once, whatever the batch size."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(5)]
    activate(admin)
    job = apply_rules(admin)
    assert job["result"] == {"users": 5, "evaluated": 5, "changed": 5}
    assert job["progress"] == {"done": 5, "total": 5}
    for p in people:
        assert len(events(admin, action="user.mapping", resource_id=p["id"])) == 1
    assert _result(admin)["evaluated"] == 0


def test_the_hash_covers_inputs_and_state():
    """Each input and each piece of rule-decided state changes the hash; a waiting user has none."""
    base = ("d", {"userName": "a"}, [{"id": "g"}], ("l", "rule", "r", None), {"x": None}, ["t"])
    first = rule_inputs.input_hash(*base)
    assert first == rule_inputs.input_hash(*base)
    variants = [
        ("e", *base[1:]),
        (base[0], {"userName": "b"}, *base[2:]),
        (*base[:2], [], *base[3:]),
        (*base[:2], [{"id": "g", "displayName": "G"}], *base[3:]),
        (*base[:3], ("m", "rule", "r", None), *base[4:]),
        (*base[:4], {"x": "r2"}, base[5]),
        (*base[:5], ["u"]),
    ]
    assert len({rule_inputs.input_hash(*v) for v in variants} | {first}) == len(variants) + 1
    assert (
        rule_inputs.input_hash(*base[:3], ("l", "rule", "r", str(uuid.uuid4())), *base[4:]) is None
    )


def test_a_sign_in_evaluation_leaves_the_user_to_the_next_apply(scim, admin, session):
    """Rules run on a sign-in's merged claims: no hash, so the next apply evaluates the user."""
    import mappings
    from scim_server.services import provisioning

    catalogue(admin)
    activate(admin)
    sam = person(scim, "sam@example.com", department="Sales")
    user = session.get(User, (scim.org_id, sam["id"]))
    assert user.rules_input_hash is not None
    claims = mappings.ExternalIdentity.from_saml("sam@example.com", {"department": ["Sales"]})
    provisioning.reevaluate_at_sign_in(session, scim.org_id, user, claims)
    assert user.rules_input_hash is None
    session.commit()
    assert _result(admin) == {"users": 1, "evaluated": 1, "changed": 0}


def _mapping_events(session, org_id: str) -> dict[str, int]:
    """user.mapping audit events and the product events the rules cause, per user id."""
    out: dict[str, int] = {}
    for (rid,) in session.execute(
        select(AuditEvent.resource_id).where(
            AuditEvent.org_id == org_id, AuditEvent.action == "user.mapping"
        )
    ):
        out[rid] = out.get(rid, 0) + 1
    for (rid,) in session.execute(
        select(Event.resource_id).where(
            Event.org_id == org_id,
            Event.type.in_(("user.license_changed", "user.roles_changed")),
        )
    ):
        out[f"event:{rid}"] = out.get(f"event:{rid}", 0) + 1
    return out


def test_a_batch_s_events_written_together_verify(scim, admin, session, monkeypatch):
    """Batches' audit and product events written as one set each (COPY on PostgreSQL): the
    chain verifies, seq and positions run without gaps, each row reads back as recorded."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 3)
    monkeypatch.setattr(bulk_rows, "COPY_FROM", 2)
    catalogue(admin)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(7)]
    eng = scim.create_group("Engineering")
    for p in people[:4]:  # the rule roles' rows too (license and role for these)
        session.add(
            GroupMember(
                org_id=scim.org_id, group_id=eng["id"], member_id=p["id"], member_type="User"
            )
        )
    session.commit()
    activate(admin)
    assert _result(admin) == {"users": 7, "evaluated": 7, "changed": 7}
    session.rollback()
    check = audit_queries.verify(session, scim.org_id)
    assert check.ok, check.problems
    seqs = session.scalars(
        select(AuditEvent.seq).where(AuditEvent.org_id == scim.org_id).order_by(AuditEvent.seq)
    ).all()
    assert seqs == list(range(1, len(seqs) + 1))
    positions = session.scalars(
        select(Event.position).where(Event.org_id == scim.org_id).order_by(Event.position)
    ).all()
    assert positions == list(range(1, len(positions) + 1))
    for p in people:
        (mapping,) = events(admin, action="user.mapping", resource_id=p["id"])
        assert mapping["changes"]["license"]["after"] is not None
        changed = session.scalars(
            select(Event).where(
                Event.org_id == scim.org_id,
                Event.resource_id == p["id"],
                Event.type == "user.license_changed",
            )
        ).all()
        assert len(changed) == 1
        assert changed[0].data["state"]["license"]["value"] == _license(admin, p["id"])
        assert changed[0].occurred_at.tzinfo is not None
    roles = session.scalars(select(UserRole).where(UserRole.org_id == scim.org_id)).all()
    assert sorted(r.user_id for r in roles) == sorted(p["id"] for p in people[:4])
    assert all(r.created_at is not None and r.rule == "engineering" for r in roles)
    assert {_license(admin, p["id"]) for p in people} == {"Engineer", "Planner"}


def test_a_batch_that_fails_at_its_commit_rolls_back_whole(scim, admin, session, monkeypatch):
    """The second batch fails writing its product events, after its audit events went in:
    nothing of it stays (users, roles, audit and product events); the chain verifies; the
    retry does the rest, each user once."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(5)]
    activate(admin)
    real = fail_product_events(monkeypatch)
    job = apply_rules(admin)
    assert job["state"] == "queued" and "disk full" in job["error"]
    assert job["progress"]["done"] == 2
    session.rollback()
    ids = sorted(p["id"] for p in people)
    seen = _mapping_events(session, scim.org_id)
    assert {k for k in seen if not k.startswith("event:")} == set(ids[:2])
    assert all(seen.get(f"event:{i}") is None for i in ids[2:])
    licensed = session.scalars(select(User.id).where(User.license_id.is_not(None))).all()
    assert sorted(licensed) == ids[:2]
    assert not session.scalars(select(UserRole.user_id).where(UserRole.user_id.in_(ids[2:]))).all()
    check = audit_queries.verify(session, scim.org_id)
    assert check.ok, check.problems
    # The retry, due now: the rest, each user once.
    session.execute(
        update(Job).where(Job.id == job["id"]).values(run_after=datetime(2000, 1, 1, tzinfo=UTC))
    )
    session.commit()
    monkeypatch.setattr(bulk_rows, "insert_rows", real)
    job = apply_rules_again(admin, job["id"])
    assert job["state"] == "succeeded", job
    session.rollback()
    seen = _mapping_events(session, scim.org_id)
    assert all(seen[i] == 1 for i in ids)
    assert all(seen[f"event:{i}"] == 1 for i in ids)  # license changed
    assert audit_queries.verify(session, scim.org_id).ok


def apply_rules_again(admin, job_id: str) -> dict:
    """Run the due jobs (a retry) and return the job."""
    assert run_jobs(admin) >= 1
    return ok(admin.get(f"/api/v1/jobs/{job_id}"))


def test_a_step_reads_on_past_unchanged_batches(scim, admin, session, monkeypatch):
    """Batches of two: a re-apply reads on through unchanged batches in one step and still
    finds the one user changed near the end; every user is checked once."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin)
    activate(admin)
    people = [person(scim, f"p{i}@example.com", department="Ops") for i in range(7)]
    job = apply_rules(admin)
    assert job["result"] == {"users": 7, "evaluated": 0, "changed": 0}
    assert job["progress"] == {"done": 7, "total": 7}
    last = max(p["id"] for p in people)
    user = session.get(User, (scim.org_id, last))
    data = dict(user.data)
    data["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = {"department": "Sales"}
    session.execute(update(User).where(User.id == last).values(data=data))
    session.commit()
    real, steps = rule_apply.apply_batch, []

    def counting(*args, **kwargs):
        batch = real(*args, **kwargs)
        steps.append(batch.checked)
        return batch

    monkeypatch.setattr(rule_apply, "apply_batch", counting)
    job = apply_rules(admin)
    assert steps == [7, 0]  # one step read the four batches, found the user, evaluated it
    assert job["result"] == {"users": 7, "evaluated": 1, "changed": 1}
    assert job["progress"] == {"done": 7, "total": 7}
    assert _license(admin, last) == "Planner"
    assert [e["resource_id"] for e in events(admin, action="user.mapping")] == [last]


COMPARED_RULES = {
    "mode": "first-match",
    "rules": [
        {
            "name": "engineering",
            "when": {"member_of": "Engineering"},
            "then": {
                "license": "Engineer",
                "roles": ["Engineer", "Portal"],
                "contact": {"title": "Engineer", "organization": "Initech"},
            },
        },
        {
            "name": "sales",
            "when": {"attribute": "department", "equals": "Sales"},
            "then": {"license": "Planner", "roles": ["Portal"], "contact": {"phone": "+1 555"}},
        },
    ],
}


def _outcome(session, org_id: str, ids: list[str]) -> dict:
    """What the rules decide for these users, as stored: license columns, hash, rule roles,
    contact fields. (Not the status: the worker that runs the apply also sends the welcomes.)"""
    session.flush()
    session.expire_all()
    license_names = {lic.id: lic.name for lic in session.scalars(select(License))}
    role_names = {role.id: role.name for role in session.scalars(select(Role))}
    out: dict = {}
    for user in session.scalars(select(User).where(User.org_id == org_id, User.id.in_(ids))):
        contact = session.get(Contact, (org_id, user.contact_id))
        out[user.id] = {
            "license": license_names.get(user.license_id),
            "wanted": license_names.get(user.license_wanted_id),
            "source": user.license_source,
            "rule": user.license_rule,
            "hash": user.rules_input_hash,
            "contact": [*rule_inputs.contact_state(contact), contact.email_key],
        }
    for row in session.scalars(select(UserRole).where(UserRole.user_id.in_(ids))):
        out[row.user_id].setdefault("roles", []).append(
            (role_names[row.role_id], row.source, row.rule)
        )
    for entry in out.values():
        entry["roles"] = sorted(entry.get("roles", []))
    return out


def test_batches_decide_as_one_user_at_a_time(scim, admin, session, monkeypatch):
    """The batch path (bulk reads, a batch's users and contacts written by one statement each)
    leaves every user as ``provisioning.reevaluate`` does one user at a time, in id order:
    licenses, a shortage, a manual license kept, rule roles added, re-labelled and removed,
    contact fields and company; each changed user's event holds the same changes."""
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 4)
    monkeypatch.setattr(bulk_rows, "COPY_FROM", 2)
    catalogue(admin, engineer_seats=10, planner_seats=2)  # one taken by a manual license
    ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    # The company exists already, so both paths name the same contact (and hash alike).
    person(scim, "boss@example.com", **{ENTERPRISE: {"organization": "Initech"}})
    engineers = [person(scim, f"eng{i}@example.com") for i in range(3)]
    sellers = [person(scim, f"sales{i}@example.com", department="Sales") for i in range(3)]
    idle = person(scim, "idle@example.com", department="Ops")
    eng = scim.create_group("Engineering", members=[e["id"] for e in engineers])
    assert eng["displayName"] == "Engineering"
    ok(admin.put(f"/api/v1/users/{engineers[1]['id']}/license", {"license": "Planner"}))
    roles = {r["name"]: r["id"] for r in ok(admin.get("/api/v1/roles"))["roles"]}
    now = datetime.now(UTC)
    for user_id, role, rule in (
        (engineers[2]["id"], "Engineer", "old rule"),  # kept, its rule re-labelled
        (idle["id"], "Portal", "old rule"),  # removed: no rule gives it now
    ):
        session.add(
            UserRole(
                org_id=scim.org_id,
                user_id=user_id,
                role_id=roles[role],
                source="rule",
                rule=rule,
                created_at=now,
            )
        )
    session.commit()
    activate(admin, COMPARED_RULES)
    ids = sorted(p["id"] for p in [*engineers, *sellers, idle])

    from scim_server.services import provisioning

    one_by_one: dict = {}
    for user_id in ids:
        one_by_one |= provisioning.reevaluate(session, scim.org_id, [user_id])
    expected = _outcome(session, scim.org_id, ids)
    session.rollback()
    assert _outcome(session, scim.org_id, ids) != expected
    session.rollback()  # the test's session shares the apply's connection: end its read first
    # Every user is evaluated: no hash yet (created before any rules), the company's too.
    assert _result(admin) == {"users": 8, "evaluated": 8, "changed": len(one_by_one)}
    session.rollback()
    assert _outcome(session, scim.org_id, ids) == expected
    # The cases meant: a shortage, a manual license kept, contact fields set, roles changed.
    assert [expected[s["id"]]["wanted"] for s in sellers].count("Planner") == 2
    assert expected[engineers[1]["id"]]["license"] == "Planner"
    assert expected[engineers[0]["id"]]["contact"][4] == "Engineer"
    assert expected[idle["id"]]["roles"] == []
    assert set(one_by_one) == set(ids)  # each of them changed something
    for user_id, outcome in one_by_one.items():
        (mapping,) = events(admin, action="user.mapping", resource_id=user_id)
        assert mapping["changes"] == outcome["changes"]
        assert mapping["explanation"] == {"rules": outcome["rules"]}
    assert audit_queries.verify(session, scim.org_id).ok


def test_a_user_the_apply_changes_is_a_new_version(scim, admin, session):
    """License, roles and status are in the SCIM view: the apply moves the ETag of the users it
    changes (an If-None-Match of the old one is answered in full), and of no one else."""
    catalogue(admin)
    sam = person(scim, "sam@example.com", department="Sales")
    olga = person(scim, "olga@example.com", department="Ops")
    run_jobs(admin)  # their welcome mail (a new version of its own), before the ETags are read
    tags = {u["id"]: scim.get(f"/scim/v2/Users/{u['id']}").headers["ETag"] for u in (sam, olga)}
    activate(admin)
    assert _result(admin)["changed"] >= 1
    assert _license(admin, sam["id"]) == "Planner"
    fresh = scim.get(f"/scim/v2/Users/{sam['id']}", headers={"If-None-Match": tags[sam["id"]]})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != tags[sam["id"]]
    assert fresh.get_json()["meta"]["version"] == fresh.headers["ETag"]
    assert _license(admin, olga["id"]) is None  # no rule for Ops: unchanged
    same = scim.get(f"/scim/v2/Users/{olga['id']}", headers={"If-None-Match": tags[olga["id"]]})
    assert same.status_code == 304


def test_a_batch_writes_only_the_columns_whose_values_changed(scim, admin, session, monkeypatch):
    """``write_batch``: the rules set a contact's title; its phone, changed by another writer
    since the contact was loaded, is not written back with the value loaded (COPY/unnest
    from two rows, and the executemany below)."""
    catalogue(admin)
    people = [person(scim, f"p{i}@example.com") for i in range(3)]
    ids = [session.get(User, (scim.org_id, p["id"])).contact_id for p in people]
    session.commit()
    for copy_from in (2, 50):
        monkeypatch.setattr(bulk_rows, "COPY_FROM", copy_from)
        contacts = session.scalars(select(Contact).where(Contact.id.in_(ids))).all()
        session.execute(update(Contact).where(Contact.id.in_(ids)).values(phone="+1 999"))
        for contact in contacts:
            contact.title = f"T{copy_from}"
        written = rule_apply.write_batch(session, contacts, rule_apply.CONTACT_COLUMNS)
        assert written == 3
        session.flush()
        session.expire_all()
        stored = session.execute(select(Contact.title, Contact.phone).where(Contact.id.in_(ids)))
        assert set(stored) == {(f"T{copy_from}", "+1 999")}
        session.rollback()


def _engineer(scim, admin) -> dict:
    """The rules (``RULES``) active, and a member of Engineering: its license and role."""
    activate(admin)
    eng = scim.create_group("Engineering")
    ann = person(scim, "ann@example.com")
    scim.patch_ops(
        f"/scim/v2/Groups/{eng['id']}",
        {"op": "add", "path": "members", "value": [{"value": ann["id"]}]},
    )
    return ann


def test_a_held_license_and_role_given_by_a_renamed_rule_is_a_change(scim, admin, session):
    """The user keeps its license and role, but the rule that gives them is now another:
    the view shows the rule (``license.rule``, the role's ``sources``), so the apply makes a
    new version (If-None-Match of the old ETag is answered in full) and its event says what
    gave them before and after."""
    catalogue(admin)
    ann = _engineer(scim, admin)
    run_jobs(admin)
    view = ok(admin.get(f"/api/v1/users/{ann['id']}"))
    assert view["license"]["rule"] == "engineering"
    tag = scim.get(f"/scim/v2/Users/{ann['id']}").headers["ETag"]
    renamed = {**RULES, "rules": [{**RULES["rules"][0], "name": "builders"}, RULES["rules"][1]]}
    preview = ok(admin.post("/api/v1/rulesets/preview", renamed))
    assert preview["would_change"] == preview["given_by_other_rules"] == 1
    (example,) = preview["examples"]
    assert example["license_given_by"] == {"before": "engineering", "after": "builders"}
    assert example["roles_given_by"] == {"Engineer": {"before": "engineering", "after": "builders"}}
    activate(admin, renamed)
    assert _result(admin)["changed"] == 1
    view = ok(admin.get(f"/api/v1/users/{ann['id']}"))
    assert view["license"] == {"value": "Engineer", "source": "rule", "rule": "builders"}
    assert [r["sources"] for r in view["roles"]] == [["rule:builders"]]
    fresh = scim.get(f"/scim/v2/Users/{ann['id']}", headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != tag
    mapping = events(admin, action="user.mapping", resource_id=ann["id"])[-1]
    role_id = session.scalar(select(Role.id).where(Role.name == "Engineer"))
    assert mapping["changes"]["roles.rule"] == {
        "added": [],
        "removed": [],
        "given_by": {role_id: {"before": "engineering", "after": "builders"}},
    }
    assert mapping["changes"]["license_given_by"] == {
        "before": {"source": "rule", "rule": "engineering"},
        "after": {"source": "rule", "rule": "builders"},
    }
    assert _result(admin) == {"users": 1, "evaluated": 0, "changed": 0}


def test_a_shortage_ended_by_the_held_license_is_a_change(scim, admin, session):
    """Rules that now want the license the user holds end its shortage (``licenseShortage``
    leaves the view): a new version, and an event that says so."""
    catalogue(admin, planner_seats=0)
    ann = _engineer(scim, admin)
    wants_planner = {**RULES["rules"][0], "then": {"license": "Planner", "roles": ["Engineer"]}}
    to_planner = {**RULES, "rules": [wants_planner]}
    activate(admin, to_planner)
    _result(admin)
    view = ok(admin.get(f"/api/v1/users/{ann['id']}"))
    assert view["license"]["value"] == "Engineer"  # lenient: kept while no seat is free
    assert view["licenseShortage"] == {"value": "Planner"}
    tag = scim.get(f"/scim/v2/Users/{ann['id']}").headers["ETag"]
    activate(admin)
    assert _result(admin)["changed"] == 1
    view = ok(admin.get(f"/api/v1/users/{ann['id']}"))
    assert view["license"]["value"] == "Engineer" and view.get("licenseShortage") is None
    assert scim.get(f"/scim/v2/Users/{ann['id']}").headers["ETag"] != tag
    planner = session.scalar(select(License.id).where(License.name == "Planner"))
    mapping = events(admin, action="user.mapping", resource_id=ann["id"])[-1]
    assert mapping["changes"]["license_wanted"] == {"before": planner, "after": None}


def _always(then: dict, name: str = "all") -> dict:
    return {
        "mode": "first-match",
        "rules": [{"name": name, "when": {"always": True}, "then": then}],
    }


def test_second_apply_with_a_waiting_user_changes_and_records_nothing(scim, admin):
    """A user waiting for a seat (lenient) is evaluated by every apply (it has no hash), but
    while no seat frees up nothing changes: no ``user.mapping`` event, no new version, not
    counted as changed."""
    make_license(admin, "Engineer", 1)
    activate(admin, _always({"license": "Engineer"}))
    person(scim, "one@example.com")
    waiting = person(scim, "two@example.com")
    assert waiting[PRODUCT]["licenseShortage"] == {"value": "Engineer"}
    first = apply_rules(admin)
    assert first["state"] == "succeeded"
    version = scim.get(f"/scim/v2/Users/{waiting['id']}").headers["ETag"]
    mapped = len(events(admin, action="user.mapping"))
    second = apply_rules(admin)
    assert second["result"] == {"users": 2, "evaluated": 1, "changed": 0}
    assert len(events(admin, action="user.mapping")) == mapped
    assert scim.get(f"/scim/v2/Users/{waiting['id']}").headers["ETag"] == version
    assert account(admin, waiting["id"])["licenseShortage"] == {"value": "Engineer"}


def _strict_eng(admin, scim) -> list[dict]:
    """Strict seats; three Eng users under rules that gave the Legacy role, then a new rule
    set: the one-seat Engineer license for Eng, the Staff role for everyone."""
    make_license(admin, "Engineer", 1)
    make_role(admin, "Legacy", "task")
    make_role(admin, "Staff", "task")
    activate(admin, _always({"roles": ["Legacy"]}))
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    users = [person(scim, f"u{i}@example.com", department="Eng") for i in range(3)]
    activate(
        admin,
        {
            "mode": "all-match",
            "rules": [
                {
                    "name": "eng",
                    "when": {"attribute": "department", "equals": "Eng"},
                    "then": {"license": "Engineer"},
                },
                {"name": "staff", "when": {"always": True}, "then": {"roles": ["Staff"]}},
            ],
        },
    )
    return users


def test_strict_apply_gives_what_fits_and_does_not_fail_the_whole_job(scim, admin):
    """Strict seats, three users the new rules give the one-seat Engineer license: the apply
    succeeds, the first gets the seat, the two others keep what they hold (no license) and
    their refusal is logged (a failed ``user.mapping``) and counted; everyone's roles change."""
    users = _strict_eng(admin, scim)
    job = apply_rules(admin)
    assert job["state"] == "succeeded", job
    assert job["result"] == {"users": 3, "evaluated": 3, "changed": 3, "refused": 2}
    for user in users:
        roles = [r["value"] for r in account(admin, user["id"])["roles"]]
        assert roles == ["Staff"], (user["userName"], roles)
    engineer = licenses_by_name(admin)["Engineer"]
    assert (engineer["used"], engineer["shortage"]) == (1, 0)
    refused = events(admin, action="user.mapping", outcome="failure")
    assert len(refused) == 2
    assert refused[0]["changes"] == {"license_refused": {"wanted": "Engineer", "seat_limit": 1}}
    assert "no seat left on license 'Engineer'" in refused[0]["detail"]
    (finished,) = events(admin, action="ruleset.apply", outcome="success")
    assert finished["changes"]["users_refused"] == 2
    assert "2 refused a license with no seat left" in finished["detail"]


def test_a_refused_user_gets_the_seat_freed_before_the_next_apply(scim, admin, session):
    """The users strict seats refused are evaluated again by the next apply (their hash is
    cleared): one gets the seat freed meanwhile, the other is refused again."""
    users = _strict_eng(admin, scim)
    apply_rules(admin)
    holder = next(u for u in users if account(admin, u["id"])["license"])
    refused = [u["id"] for u in users if u is not holder]
    stored = session.scalars(select(User.rules_input_hash).where(User.id.in_(refused))).all()
    assert stored == [None, None]
    assert scim.delete(f"/scim/v2/Users/{holder['id']}").status_code == 204
    job = apply_rules(admin)
    assert job["result"] == {"users": 2, "evaluated": 2, "changed": 1, "refused": 1}
    licensed = [u for u in refused if account(admin, u)["license"]]
    assert len(licensed) == 1


def _engineer_for(department: str) -> dict:
    return {
        "mode": "first-match",
        "rules": [
            {
                "name": "eng",
                "when": {"attribute": "department", "equals": department},
                "then": {"license": "Engineer"},
            }
        ],
    }


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_rules_apply_gives_the_seat_it_frees_to_the_user_the_rules_now_want(scim, admin, strict):
    """Engineer's one seat is held by A (department Eng); the new rules give Engineer to
    department Sales (B) instead. One apply leaves what the rules say: A without it, B on
    it, no shortage, nothing refused. When B's id sorted first, B was evaluated before A
    gave the seat back: lenient left B waiting next to a free seat, strict logged B refused
    and left the seat empty, though the job succeeded."""
    make_license(admin, "Engineer", 1)
    activate(admin, _engineer_for("Eng"))
    holder = person(scim, "a@example.com", department="Eng")
    newcomer = person_sorting_before(scim, holder, department="Sales")
    assert account(admin, holder["id"])["license"]["value"] == "Engineer"
    if strict:
        ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    activate(admin, _engineer_for("Sales"))

    job = apply_rules(admin)

    assert job["state"] == "succeeded", job
    assert job["result"] == {"users": 2, "evaluated": 2, "changed": 2}, job["result"]
    assert account(admin, holder["id"])["license"] is None
    view = account(admin, newcomer["id"])
    assert (view["license"]["value"], view["licenseShortage"]) == ("Engineer", None)
    engineer = licenses_by_name(admin)["Engineer"]
    assert (engineer["used"], engineer["seats_left"], engineer["shortage"]) == (1, 0, 0)
    assert events(admin, outcome="failure") == []


# -- what the log says of a re-evaluation -------------------------------------------------


def _mappings_name(admin, user_name: str, external_id: str) -> None:
    """Every ``user.mapping`` event names the user (README: each event carries externalId and
    userName), so the log's search by userName finds its license and role moves."""
    moves = events(admin, action="user.mapping")
    assert moves, "no user.mapping event"
    assert {(e["user_name"], e["external_id"]) for e in moves} == {(user_name, external_id)}
    found = {e["action"] for e in events(admin, user_name=user_name)}
    assert "user.mapping" in found, found


def test_an_apply_names_each_user_it_changed(scim, admin):
    catalogue(admin)
    person(scim, "a@example.com", department="Sales", externalId="ext-a")
    activate(admin)
    apply_rules(admin)
    _mappings_name(admin, "a@example.com", "ext-a")


def test_a_strict_refusal_by_an_apply_names_the_user(scim, admin):
    """Strict seats, one Planner seat, two Sales people the rules then want on it: the
    apply's failure event for the one refused names it."""
    catalogue(admin, planner_seats=1)
    people = {
        e: person(scim, e, department="Sales", externalId=f"ext-{e[0]}")["id"]
        for e in ("a@example.com", "b@example.com")
    }
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    activate(admin)
    apply_rules(admin)
    moves = events(admin, action="user.mapping")
    refused = [e for e in moves if e["outcome"] == "failure"]
    assert len(refused) == 1 and len(moves) == 2, moves
    for event in moves:
        user_name = next(n for n, i in people.items() if i == event["resource_id"])
        assert (event["user_name"], event["external_id"]) == (user_name, f"ext-{user_name[0]}")


def test_a_membership_change_and_a_rename_name_the_users_they_moved(scim, admin):
    """A member added to a group a rule names, then the group renamed away from that name:
    both re-evaluations' events name the user."""
    catalogue(admin)
    activate(admin)
    group = scim.create_group("Engineering")["id"]
    user = person(scim, "a@example.com", externalId="ext-a")
    add = {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
    assert scim.patch_ops(f"/scim/v2/Groups/{group}", add).status_code == 204
    rename = {"op": "replace", "path": "displayName", "value": "Platform"}
    assert scim.patch_ops(f"/scim/v2/Groups/{group}", rename).status_code == 204
    assert len(events(admin, action="user.mapping")) == 2
    _mappings_name(admin, "a@example.com", "ext-a")


def test_an_apply_names_the_rule_set_it_ran_not_the_one_it_was_queued_under(scim, admin):
    """Queued under one version, another activated before the worker took the job: the job
    runs the active rules (the user gets what they give), and its events name that version."""
    catalogue(admin)
    user = person(scim, "a@example.com", department="Sales")
    first = activate(admin)
    assert admin.post("/api/v1/rulesets/apply", None).status_code == 202
    everyone = {"name": "all", "when": {"always": True}, "then": {"license": "Engineer"}}
    second = activate(admin, {"mode": "first-match", "rules": [everyone]})
    run_jobs(admin)
    assert account(admin, user["id"])["license"]["value"] == "Engineer"
    started = events(admin, action="ruleset.apply.started")
    done = [e for e in events(admin, action="ruleset.apply") if e["outcome"] == "success"]
    named = [e["resource_id"] for e in started + done]
    assert named == [second["id"], second["id"]], (first["id"], named)
