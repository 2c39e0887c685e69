"""`object-store` (swift-proxy): the relation existing with a unit makes the swift store ready.

swift-proxy sends only `swift-url`, which glance does not use: glance reaches Swift through
the Keystone catalog with its own service credentials (identity-service relation).
"""

from __future__ import annotations

import ops

ENDPOINT = "object-store"


def is_ready(relation: ops.Relation) -> bool:
    """Whether a swift-proxy unit has joined (glance sends nothing and needs nothing more)."""
    return bool(relation.units)
