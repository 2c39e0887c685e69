"""Unit tests of glance_charm.domain."""
