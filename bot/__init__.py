"""Payments support assistant: handoff queue, gateway, launcher, analytics."""
