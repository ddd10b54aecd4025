"""Single sign-on: SAML 2.0 and OpenID Connect logins in, one OpenID Connect provider out."""
