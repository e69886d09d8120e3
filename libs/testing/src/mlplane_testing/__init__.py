"""Test support for every package, imported by tests only.

Real servers (S3, an OCI registry) that tests use, started for the test session
when the machine does not already run them.
"""
