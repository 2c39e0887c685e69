"""Reads the charm's model (bindings, relations) into the frozen context."""
