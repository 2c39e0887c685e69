"""`image-service` (glance, provided): tell nova/cinder where the API is and whether it is up."""

from __future__ import annotations

import ops

from glance_charm.relations.common import update_bag

ENDPOINT = "image-service"


def publish(relations: list[ops.Relation], unit: ops.Unit, api_url: str | None) -> bool:
    """Publish `glance-api-server` once ready (None: withdraw it and say not ready)."""
    changed = False
    for relation in relations:
        changed |= update_bag(relation.data[unit], {
            "glance-api-server": api_url,
            "glance-api-ready": "yes" if api_url else "no",
        })
    return changed
