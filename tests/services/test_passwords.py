"""Local passwords: argon2id, the policy's rules (each named), history, links that work once."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import AuditEvent, PasswordHistory, User, UserPassword
from scim_server.services import passwords
from scim_server.services.passwords import (
    Hashing,
    PasswordPolicy,
    PasswordRejected,
    check_policy,
    generate_temporary,
)

CHEAP = Hashing(time_cost=1, memory_kib=1024, parallelism=1)
POLICY = PasswordPolicy()
MINE = ["alice", "alice@example.com", "alice.doe@example.com", "alice.doe"]


def _rule(password: object, policy: PasswordPolicy = POLICY) -> str:
    with pytest.raises(PasswordRejected) as err:
        check_policy(policy, password, identifiers=MINE)
    return err.value.rule


def test_hash_is_argon2id_and_verifies():
    digest = passwords.hash_password(CHEAP, "a long passphrase here")
    assert digest.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert passwords.verify_password(CHEAP, digest, "a long passphrase here") == (True, False)
    assert passwords.verify_password(CHEAP, digest, "a long passphrase herE") == (False, False)
    assert passwords.verify_password(CHEAP, "not a hash", "x") == (False, False)


def test_changed_parameters_ask_for_a_rehash():
    old = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash("a long passphrase")
    assert passwords.verify_password(CHEAP, old, "a long passphrase") == (True, True)


def test_passwords_are_normalised_nfkc_and_earlier_raw_hashes_still_verify():
    """NIST SP 800-63B §5.1.1.2: NFKC before hashing, so the composed and decomposed forms are
    one password; a hash of a raw decomposed password (made before) still verifies, once more
    with the raw form, and asks for a rehash (the sign-in then stores the NFKC form's)."""
    composed = unicodedata.normalize("NFC", "Zoë's crème brûlée")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    digest = passwords.hash_password(CHEAP, decomposed)
    assert passwords.verify_password(CHEAP, digest, composed) == (True, False)
    legacy = CHEAP.hasher().hash(decomposed)
    assert passwords.verify_password(CHEAP, legacy, decomposed) == (True, True)
    assert passwords.verify_password(CHEAP, legacy, composed) == (False, False)
    # Compatibility forms fold too: the ligature "ﬁ" is "fi", a superscript five is "5".
    assert passwords.verify_password(
        CHEAP, passwords.hash_password(CHEAP, "\ufb01ne fi\u2075 x"), "fine fi5 x"
    ) == (True, False)


def test_the_policy_reads_the_normalised_password():
    """The policy checks what is hashed: a username typed decomposed is still the username."""
    zoe = unicodedata.normalize("NFC", "zoë.martin")
    typed = "I am " + unicodedata.normalize("NFD", zoe) + " and this is long"
    with pytest.raises(PasswordRejected) as err:
        check_policy(POLICY, typed, identifiers=[zoe])
    assert err.value.rule == "personal"
    assert (
        check_policy(POLICY, "\ufb01ne violet tractor", identifiers=MINE) == "fine violet tractor"
    )


def test_each_refusal_names_its_rule():
    assert _rule("short-one") == "length"
    assert _rule("x" * 129) == "length"
    assert _rule("Password1234") == "common"  # a common password with digits
    assert _rule("qwertyuiop12") == "common"
    assert _rule("aaaaaaaaaaaaaaaa") == "common"
    assert _rule("my name is alice.doe ok") == "personal"
    assert _rule("ALICE@EXAMPLE.COM rocks") == "personal"
    assert _rule(12345678901234) == "length"  # not a string
    assert check_policy(POLICY, "correct horse battery", identifiers=MINE)
    # No composition rules: lower-case words alone are fine when long and uncommon.
    assert check_policy(POLICY, "mydogisfluffy", identifiers=MINE)


def test_a_megabyte_is_refused_before_any_hashing():
    huge = "x" * 1_000_000
    assert _rule(huge, PasswordPolicy(max_length=1024)) == "length"
    with pytest.raises(PasswordRejected):
        passwords.hash_password(CHEAP, huge)
    assert passwords.verify_password(CHEAP, passwords.hash_password(CHEAP, "y" * 20), huge) == (
        False,
        False,
    )


def test_the_common_list_is_large_and_offline():
    assert len(passwords._common_passwords()) >= 20_000


def test_policy_off_switch_for_common_passwords():
    relaxed = PasswordPolicy(refuse_common=False)
    assert check_policy(relaxed, "Password1234", identifiers=MINE) == "Password1234"


def test_temporary_passwords_are_random_and_satisfy_the_policy():
    seen = {generate_temporary(POLICY) for _ in range(50)}
    assert len(seen) == 50
    for value in seen:
        assert check_policy(POLICY, value, identifiers=MINE) == value
        assert not set(value) & set("0O1lI")
    long_policy = PasswordPolicy(min_length=40, max_length=64)
    assert 40 <= len(generate_temporary(long_policy)) <= 64


def _user(app, scim) -> User:
    doc = scim.create_user("alice@example.com")
    with db.reader(app)() as s:
        user = s.get(User, (scim.org_id, doc["id"]))
        assert user is not None
        return user


def test_set_password_keeps_history_and_refuses_the_last_five(app, scim):
    user = _user(app, scim)
    policy = PasswordPolicy(history=5)
    chosen = [f"first choice number {n} zebra" for n in range(7)]
    for value in chosen:
        with db.writer(app)() as s, s.begin():
            s.add(user)
            passwords.set_password(
                s, CHEAP, policy, user, value, identifiers=MINE, detail="password changed"
            )
    with db.writer(app)() as s, s.begin():
        s.add(user)
        for old in chosen[-5:]:
            with pytest.raises(PasswordRejected) as err:
                passwords.set_password(
                    s, CHEAP, policy, user, old, identifiers=MINE, detail="password changed"
                )
            assert err.value.rule == "history"
        # Older than the last five: allowed again.
        passwords.set_password(
            s, CHEAP, policy, user, chosen[0], identifiers=MINE, detail="password changed"
        )
    with db.reader(app)() as s:
        kept = s.scalar(
            select(func.count()).where(
                PasswordHistory.org_id == user.org_id, PasswordHistory.user_id == user.id
            )
        )
        assert kept == 5
        row = s.get(UserPassword, (user.org_id, user.id))
        assert row is not None and passwords.verify_password(CHEAP, row.hash, chosen[0])[0]
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == user.org_id, AuditEvent.action == "user.password.set"
            )
        ).all()
        assert len(events) == 8
        assert all("zebra" not in str(e.changes) + str(e.detail) for e in events)


def test_links_are_hashed_single_use_and_expire(app, scim):
    user = _user(app, scim)
    with db.writer(app)() as s, s.begin():
        s.add(user)
        first = passwords.issue_link(s, user, "reset", timedelta(minutes=60), sent_to=None)
        second = passwords.issue_link(s, user, "reset", timedelta(minutes=60), sent_to=None)
        expired = passwords.issue_link(s, user, "activation", timedelta(seconds=-1), sent_to=None)
    with db.writer(app)() as s, s.begin():
        assert passwords.find_link(s, first, "reset") is None  # replaced by the second
        assert passwords.find_link(s, second, "activation") is None  # wrong purpose
        assert passwords.find_link(s, expired, "activation") is None
        assert passwords.find_link(s, "x" * 5000, "reset") is None
        assert passwords.find_link(s, None, "reset") is None
        assert passwords.consume_link(s, second, "reset") is not None
    with db.writer(app)() as s, s.begin():
        assert passwords.consume_link(s, second, "reset") is None
        stored = [t.token_hash for t in s.scalars(select(passwords.CredentialToken))]
        assert second not in stored and len(stored[0]) == 64


def test_a_chosen_password_ends_the_live_links_and_a_temporary_one_does_not(app, scim):
    """Links mailed before a password of the person's own was set would replace it: they die
    with its setting, in its transaction. A temporary password (the admin's credentials
    decide about links, ``services.credentials``) ends none."""
    user = _user(app, scim)
    with db.writer(app)() as s, s.begin():
        s.add(user)
        reset = passwords.issue_link(s, user, "reset", timedelta(minutes=60), sent_to=None)
        activation = passwords.issue_link(s, user, "activation", timedelta(days=7), sent_to=None)
        passwords.set_password(
            s,
            CHEAP,
            POLICY,
            user,
            "a temporary one here 42",
            identifiers=[],
            temporary=True,
            detail="temporary",
        )
    with db.writer(app)() as s, s.begin():
        assert passwords.find_link(s, reset, "reset") is not None
        assert passwords.find_link(s, activation, "activation") is not None
        s.add(user)
        passwords.set_password(
            s,
            CHEAP,
            POLICY,
            user,
            "first choice number 9 zebra",
            identifiers=MINE,
            detail="chosen",
        )
    with db.writer(app)() as s, s.begin():
        assert passwords.find_link(s, reset, "reset") is None
        assert passwords.find_link(s, activation, "activation") is None
