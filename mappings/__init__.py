"""The mapping rules engine: pure Python, no Flask, no database (see the identity-model issue)."""
