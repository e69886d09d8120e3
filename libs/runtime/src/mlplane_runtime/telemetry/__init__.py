"""Tracing, metrics and structured logs shared by every service."""
