"""Unit tests of glance_charm.relations."""
