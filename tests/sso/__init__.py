"""Tests of the sso package."""
