"""Local credentials: sign-in with a password, then a second factor (TOTP, passkey, recovery code).

``routing`` (which way an address goes), ``accounts`` (which account a typed
login names), ``password`` (the password decision, lockout, the end of a
sign-in), ``pending`` (a half-done sign-in in the signed session), ``factors``
(TOTP sealing and checks, the QR code), ``passkeys`` (WebAuthn), ``views``
(the pages under ``/sso``), ``security`` (the person's own security page).
"""
