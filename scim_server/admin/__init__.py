"""The organization admin API (``/api/v1``), authenticated with admin tokens."""
