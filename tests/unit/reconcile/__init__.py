"""Unit tests of glance_charm.reconcile."""
