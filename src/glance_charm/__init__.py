"""The Glance charm's code below the ops entry point (src/charm.py).

Layers, top to bottom: reconcile, state, relations, domain; workload beside relations
and never importing ops. See README, "Architecture".
"""
