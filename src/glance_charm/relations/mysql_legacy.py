"""`db` (legacy mysql interface): the provider hands out database, user, password, host."""

from __future__ import annotations

import ops
from pydantic import ValidationError

from glance_charm.domain.models import DatabaseInfo
from glance_charm.relations.common import clean, first_bag_with, log_bad_key

ENDPOINT = "db"
REQUIRED_KEYS = ("database", "host", "user", "password")


def read(relation: ops.Relation) -> DatabaseInfo | None:
    """Return connection data once a provider unit sent the four keys glance needs.

    ops-lib-mysql reads the same keys but also insists on `port` and `root_password`
    (classic cs:mysql sends neither; glance needs neither) and raises out of the hook on a
    non-integer port, so it is the test-time reference for this adapter, not its engine.
    """
    bag = first_bag_with(relation, REQUIRED_KEYS)
    if bag is None:
        return None
    port_raw = clean(bag.get("port"))
    port: int | None = None
    if port_raw is not None:
        try:
            port = int(port_raw)
        except ValueError:
            log_bad_key(ENDPOINT, "port", "not an integer")
            return None
    try:
        return DatabaseInfo(
            endpoint=ENDPOINT,
            host=clean(bag.get("host")) or "",
            port=port,
            user=clean(bag.get("user")) or "",
            password=clean(bag.get("password")) or "",  # type: ignore[arg-type]
            name=clean(bag.get("database")) or "",
        )
    except ValidationError as err:
        for problem in err.errors():
            log_bad_key(ENDPOINT, str(problem["loc"][0]), problem["msg"])
        return None
