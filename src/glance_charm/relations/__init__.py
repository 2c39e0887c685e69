"""Relation adapters: raw relation data in, small typed objects out (and back)."""
