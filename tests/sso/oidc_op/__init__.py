"""A real, local OpenID provider for the relying-party tests."""
