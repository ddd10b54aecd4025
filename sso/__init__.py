"""SSO federation (SAML 2.0, OpenID Connect): not built yet; see the SSO issue."""
