"""A 512-bit RSA IdP key pair (factorable in hours), for the weak-key refusals."""

from __future__ import annotations

from tests.sso.saml_idp import FakeIdp

WEAK_512_KEY = """-----BEGIN PRIVATE KEY-----
MIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEA0BGZvfJ2EmaFmXC5
M2tjwFDYD1GWuxbUFuuSch+VMfWG0Km9h4sFPFN+HseGsLQ+yLALrZ5nNtu+kQXc
WYV7XwIDAQABAkApkWqapSbrlCnatsd5O1opYL1Zih5H8E6c6aFPRXoECcHccrs9
0p55X2yGWCi0uHUa0dv1TgxsWrLz5XbCYjTBAiEA95RQD9DgWiVvgu5cQSmeuph2
dNFPsdYTFXnbANEi4H8CIQDXJURQVv/VOZ4fU5mcILROGdaPgXJ5qDTbkDBWxlP1
IQIhALlaX0pH/f9fcYnbvFPIvh5C0MSKhBjHBciZTz3gVTUvAiEApplwHfpQn4+/
dyiokbLtjHELqhKmT7jGPaOZGwj3KKECIQCUJjfw8msvlfHdOGnSw35Q1LqDDbbG
ltPPfPajKboL3w==
-----END PRIVATE KEY-----
"""
# openssl req -x509 -newkey rsa:512 (cryptography refuses to make keys under 1024 bits)
WEAK_512_CERT = """-----BEGIN CERTIFICATE-----
MIIBdTCCAR+gAwIBAgIUNypgQlp/2pq0ae60PhHfCteqisIwDQYJKoZIhvcNAQEL
BQAwDzENMAsGA1UEAwwEd2VhazAeFw0yNjEyMDcxMTA0NTRaFw0yNzEyMDcxMTA0
NTRaMA8xDTALBgNVBAMMBHdlYWswXDANBgkqhkiG9w0BAQEFAANLADBIAkEA0BGZ
vfJ2EmaFmXC5M2tjwFDYD1GWuxbUFuuSch+VMfWG0Km9h4sFPFN+HseGsLQ+yLAL
rZ5nNtu+kQXcWYV7XwIDAQABo1MwUTAdBgNVHQ4EFgQUItFvUzx9ymztKcOgNEzy
IPlczq4wHwYDVR0jBBgwFoAUItFvUzx9ymztKcOgNEzyIPlczq4wDwYDVR0TAQH/
BAUwAwEB/zANBgkqhkiG9w0BAQsFAANBAF4KbOEQlFPbK658uMOodgkc9LmSIVqA
JKSZWYRiGsITtf8hRs2mjNh//5EPY9sbwv13GZ3lZ8wUaYlsFjvVI2w=
-----END CERTIFICATE-----
"""


class WeakIdp(FakeIdp):
    """An IdP signing with the 512-bit key."""

    @property
    def key(self) -> str:
        return WEAK_512_KEY

    @property
    def cert(self) -> str:
        return WEAK_512_CERT
