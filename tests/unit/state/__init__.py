"""Unit tests of glance_charm.state."""
