"""``users.update_user`` reads and writes its rows with Core statements: the session's
own copy of the user (an earlier operation in one session) follows the write."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.models import Contact, Event, User
from scim_server.scim.patch import UserPatch
from scim_server.services import users
from tests.support import Scim


def _patch(user_id: str, path: str, value: object) -> UserPatch:
    return UserPatch(user_id, [{"op": "replace", "path": path, "value": value}])


def test_a_user_the_session_holds_takes_the_written_values(scim: Scim, session: Session) -> None:
    """A user already in the session (loaded before) holds the new values after a PATCH,
    clean (nothing left to flush), and the product event's state is the new one."""
    made = scim.create_user("held@example.com", title="Engineer")
    held = users.get_user(session, scim.org_id, made["id"])
    session.commit()
    written = users.update_user(
        session, scim.org_id, made["id"], _patch(made["id"], "active", False), action="user.patch"
    )
    assert (held.version, held.active, held.status) == (2, False, "DEACTIVATED")
    assert held.data["active"] is False and held not in session.dirty
    assert written is held  # what the caller goes on with is what the session tracks
    state = session.scalars(
        select(Event.data).where(Event.org_id == scim.org_id).order_by(Event.position.desc())
    ).first()
    assert state is not None and state["state"]["version"] == 2
    session.expire_all()
    stored = session.get(User, (scim.org_id, made["id"]))
    assert stored is not None and (stored.version, stored.active) == (2, False)


def test_the_contact_row_is_written_only_where_it_changed(scim: Scim, session: Session) -> None:
    """A PATCH of title changes the person contact's title (its own UPDATE); a PATCH of
    nickName leaves the contact row as it was."""
    made = scim.create_user("contact@example.com", title="Engineer")
    users.update_user(session, scim.org_id, made["id"], _patch(made["id"], "title", "Lead"))
    user = session.get(User, (scim.org_id, made["id"]))
    assert user is not None
    contact = session.get(Contact, (scim.org_id, user.contact_id))
    assert contact is not None and contact.title == "Lead"
    modified = contact.updated_at
    session.commit()
    users.update_user(session, scim.org_id, made["id"], _patch(made["id"], "nickName", "Al"))
    session.expire_all()
    contact = session.get(Contact, (scim.org_id, user.contact_id))
    assert contact is not None and (contact.title, contact.updated_at) == ("Lead", modified)


def test_a_change_between_the_early_read_and_the_lock_is_not_lost(live, monkeypatch) -> None:
    """SQLite applies a PATCH before taking the write lock: when another write lands in
    between, the PATCH is applied again to the document it finds under the lock (no lost
    update); the version counts both."""
    from scim_server.db import db

    app, scim = live
    made = scim.create_user("early@example.com")
    early = users._prepared
    seen: list[object] = []

    def with_a_write_in_between(session, org_id, user_id, change):  # type: ignore[no-untyped-def]
        prepared = early(session, org_id, user_id, change)
        seen.append(prepared)
        if len(seen) == 1:  # another client's write commits now
            with db.writer(app)() as other:
                users.update_user(other, org_id, user_id, _patch(user_id, "nickName", "Al"))
        return prepared

    monkeypatch.setattr(users, "_prepared", with_a_write_in_between)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{made['id']}", {"op": "replace", "path": "title", "value": "Lead"}
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["title"], body["nickName"], body["meta"]["version"]) == ("Lead", "Al", 'W/"3"')
    if db.engine(app).dialect.name == "sqlite":
        assert seen[0] is not None  # the early read happened (and was not used)


def test_a_patch_that_waited_for_the_row_sees_the_contact_as_committed(live, monkeypatch) -> None:
    """A PATCH waiting for the user's row (another write holds it) reads the person contact
    after the wait: setting the title back to what it was before the other write
    committed still reaches the contact."""
    import threading
    import time

    from scim_server.db import db

    app, scim = live
    made = scim.create_user("waiting@example.com", title="X")
    url = f"/scim/v2/Users/{made['id']}"
    holding, release = threading.Event(), threading.Event()
    reindex = users.reindex_change

    def hold_the_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        reindex(*args, **kwargs)
        if not holding.is_set():
            holding.set()  # the first PATCH holds its locks until released
            release.wait(30)

    monkeypatch.setattr(users, "reindex_change", hold_the_first)

    def patch(title: str, statuses: list[int]) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        op = {"op": "replace", "path": "title", "value": title}
        statuses.append(client.patch_ops(url, op).status_code)

    first: list[int] = []
    second: list[int] = []
    holder = threading.Thread(target=patch, args=("A", first))
    holder.start()
    assert holding.wait(30)
    waiter = threading.Thread(target=patch, args=("X", second))
    waiter.start()
    time.sleep(0.5)  # let it reach the lock (if it does not in time, it reads after: same)
    release.set()
    holder.join(30)
    waiter.join(30)
    assert first == second == [200]
    body = scim.get(url).get_json()
    assert (body["title"], body["meta"]["version"]) == ("X", 'W/"3"')
    with db.reader(app)() as session:
        contact_id = session.scalar(select(User.contact_id).where(User.id == made["id"]))
        assert session.scalar(select(Contact.title).where(Contact.id == contact_id)) == "X"


def test_a_contact_the_session_holds_takes_the_written_values(scim: Scim, session: Session) -> None:
    """The person contact joins the session only when the session held it already (an
    earlier operation): that object then holds the new title, clean; otherwise the row is
    written and the session holds no contact."""
    made = scim.create_user("held-contact@example.com", title="Engineer")
    user = session.get(User, (scim.org_id, made["id"]))
    assert user is not None
    contact_id = user.contact_id
    key = session.identity_key(Contact, (scim.org_id, contact_id))
    session.commit()
    users.update_user(session, scim.org_id, made["id"], _patch(made["id"], "title", "Lead"))
    assert key not in session.identity_map
    held = session.get(Contact, (scim.org_id, contact_id))
    assert held is not None and held.title == "Lead"
    session.commit()
    users.update_user(session, scim.org_id, made["id"], _patch(made["id"], "title", "Chief"))
    assert session.identity_map.get(key) is held
    assert held.title == "Chief" and held not in session.dirty
    session.expire_all()
    assert session.scalar(select(Contact.title).where(Contact.id == contact_id)) == "Chief"


def test_the_locked_read_gives_every_column(scim: Scim, session: Session) -> None:
    """``_locked_user`` reads its rows by position: the user, its contact and the settings
    fingerprint it gives are what reading them by name gives."""
    from scim_server.services.org_config import FINGERPRINT, FINGERPRINT_COLUMNS

    made = scim.create_user("positions@example.com", title="Engineer")
    with session.begin():
        locked = users._locked_user(session, scim.org_id, made["id"])
        user = session.get(User, (scim.org_id, made["id"]))
        assert user is not None
        contact = session.get(Contact, (scim.org_id, user.contact_id))
        params = {"org_id": scim.org_id}
        fingerprint = session.execute(select(FINGERPRINT), params).mappings().one()
    for model, read, loaded in ((User, locked.user, user), (Contact, locked.contact, contact)):
        keys = [attr.key for attr in model.__mapper__.column_attrs]
        assert {k: read.__dict__[k] for k in keys} == {k: getattr(loaded, k) for k in keys}
    assert locked.fingerprint == tuple(fingerprint[name] for name in FINGERPRINT_COLUMNS)
