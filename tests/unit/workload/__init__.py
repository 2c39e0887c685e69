"""Unit tests of glance_charm.workload."""
