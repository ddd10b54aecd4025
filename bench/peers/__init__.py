"""The other Python SCIM servers, measured next to ours in the same run (``--peers``).

- ``scim2-server``, the python-scim reference server, in memory (one process);
- ``django-scim2`` under gunicorn (two sync workers, as ours), on SQLite in WAL
  mode and on PostgreSQL, with a static bearer token (``django_project/``).

Each is installed into its own virtual environment under ``bench/results/peers``
at bench time (``install``); nothing of theirs is imported into this process.
"""
