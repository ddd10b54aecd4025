"""SSO refusals: a stable reason code, a generic message for the person, a precise log detail.

The person in the browser learns what to do (ask the administrator, start
again) but never the internals of a failed signature check: those go to the
log, the sign-in record and the audit event, where an admin debugs the
connection.
"""

from __future__ import annotations

_START_AGAIN = "Please start the sign-in again from your company's portal or from our login page."
_ASK_ADMIN = "Please contact your administrator."
_BAD_RESPONSE = (
    "The response from your identity provider could not be accepted. "
    f"{_START_AGAIN} If this keeps happening, contact your administrator."
)

_NOT_MATCHED = (
    "Sign-in not possible",
    f"Your sign-in could not be matched to an account in this organization. {_ASK_ADMIN}",
)

# reason code -> (page title, message for the person)
MESSAGES: dict[str, tuple[str, str]] = {
    "unknown_user": (
        "No account",
        f"There is no account for you in this organization. {_ASK_ADMIN}",
    ),
    "inactive_account": (
        "Account not active",
        f"Your account is not active. {_ASK_ADMIN}",
    ),
    "locked": ("Account locked", f"Your account is locked. {_ASK_ADMIN}"),
    # Which account: the same words for both, so the page does not say whose account it was.
    "subject_mismatch": _NOT_MATCHED,
    "lookalike_identity": _NOT_MATCHED,
    "missing_license": (
        "No license",
        f"Your account has no license for this product. {_ASK_ADMIN}",
    ),
    "email_domain_not_allowed": (
        "E-mail address not accepted",
        f"Your e-mail address is not one this organization signs in with. {_ASK_ADMIN}",
    ),
    "unknown_domain": (
        "No single sign-on for this address",
        "We do not know a single sign-on connection for this e-mail domain. "
        "Check the address, or ask your administrator.",
    ),
    "connection_disabled": (
        "Sign-in unavailable",
        f"Single sign-on for your organization is not available right now. {_ASK_ADMIN}",
    ),
    "unknown_connection": ("Sign-in unavailable", "This sign-in link is not valid."),
    "jit_failed": (
        "Account could not be created",
        f"Your account could not be created automatically. {_ASK_ADMIN}",
    ),
    "state_mismatch": ("Sign-in expired", f"This sign-in is no longer valid. {_START_AGAIN}"),
    "expired": ("Sign-in expired", f"This sign-in has expired. {_START_AGAIN}"),
    "state_expired": ("Sign-in expired", f"This sign-in has expired. {_START_AGAIN}"),
    "replay": ("Sign-in already used", f"This sign-in was already used. {_START_AGAIN}"),
    "idp_error": (
        "Sign-in refused by your identity provider",
        f"Your identity provider did not sign you in. {_START_AGAIN}",
    ),
    "invalid_request": ("Invalid request", "This request is not valid."),
    # Local passwords: one answer for a wrong password, an unknown account and a locked one,
    # so the page never tells whether an account exists.
    "invalid_credentials": (
        "Sign-in failed",
        "The e-mail address or password is not correct. After too many wrong attempts an "
        "account is locked for a while and its owner is told by e-mail.",
    ),
    "temporary_password_expired": (
        "Temporary password expired",
        "Your temporary password has expired. Ask your administrator to send you a new one, "
        "or choose a new password with “Forgot your password?”.",
    ),
    "pending_expired": (
        "Sign-in expired",
        "This sign-in took too long or is no longer valid. Please sign in again.",
    ),
    "throttled": (
        "Too many attempts",
        "There were too many sign-in attempts from your network. Wait a minute, then try again.",
    ),
    "bad_input": ("Invalid request", "This form could not be read. Please sign in again."),
    # Our side, not the person's nor the IdP's: nothing to retry until an admin acts.
    "secret_unreadable": (
        "Sign-in unavailable",
        "Single sign-on for your organization needs its administrator's attention "
        f"before it can be used again. {_ASK_ADMIN}",
    ),
}
# Defects of the response itself: the person gets the same generic page for all.
RESPONSE_DEFECTS = (
    "invalid_response",
    "wrong_audience",
    "wrong_recipient",
    "wrong_issuer",
    "unsigned",
    "signature",
    "deprecated_algorithm",
    "xml_attack",
    "too_large",
    "invalid_config",
    "invalid_callback",
    "invalid_token",
    "token_error",
    "discovery_error",
)
for _code in RESPONSE_DEFECTS:
    MESSAGES.setdefault(_code, ("Sign-in failed", _BAD_RESPONSE))

_DEFAULT = ("Sign-in failed", _BAD_RESPONSE)
# The message was fine; the person may not sign in (DESIGN.md §2).
PERSON_REFUSALS = frozenset(
    {
        "unknown_user",
        "inactive_account",
        "locked",
        "missing_license",
        "email_domain_not_allowed",
        "jit_failed",
        "connection_disabled",
        "subject_mismatch",
        "lookalike_identity",
        "temporary_password_expired",
    }
)


class SsoError(Exception):
    """A refused sign-in step: ``reason_code`` is stable, ``detail`` is precise (log only)."""

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail

    @property
    def title(self) -> str:
        return MESSAGES.get(self.reason_code, _DEFAULT)[0]

    @property
    def message(self) -> str:
        """What the person is told: generic, never the detail."""
        return MESSAGES.get(self.reason_code, _DEFAULT)[1]

    @property
    def status(self) -> int:
        """HTTP status of the refusal page: 403 for a refused person, 400 for a bad message."""
        if self.reason_code == "unknown_connection":
            return 404
        if self.reason_code == "throttled":
            return 429
        if self.reason_code == "invalid_credentials":
            return 401
        return 403 if self.reason_code in PERSON_REFUSALS else 400
