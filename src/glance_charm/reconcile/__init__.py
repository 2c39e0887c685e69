"""Drives one hook: install, frontend, publish, context, apply, ready."""
