"""Conformance suite for DRM license servers and devices (catalog, runner, reports)."""
