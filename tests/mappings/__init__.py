"""Tests of the mapping rules engine (pure Python: no app, no database)."""
