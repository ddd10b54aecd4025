"""Benchmark harness for the SCIM server: ``.venv/bin/python -m bench`` (see BENCHMARKS.md).

It loads organizations of realistic users straight into the database, starts
the real server and a bare Flask baseline under gunicorn, drives HTTP load at
several concurrencies and checks the performance targets.
"""
