"""The rolling restart: a peer lock around a drained glance-api restart."""

from __future__ import annotations

import logging
import os

import ops

from glance_charm.domain.exceptions import WaitingError, WorkloadError
from glance_charm.relations import peers
from glance_charm.workload.glance import GlanceWorkload
from glance_charm.workload.haproxy import HaproxyWorkload, server_name

logger = logging.getLogger(__name__)


def rolling_restart(charm: ops.CharmBase, workload: GlanceWorkload, haproxy: HaproxyWorkload,
                    bind_port: int, changed: bool) -> None:
    """Restart glance-api for new config, one unit at a time when there are several.

    A unit that needs a restart asks the leader for the lock in its peer bag; the
    leader grants one unit at a time in the app bag; the holder drains (fails its
    /healthcheck until every haproxy has it out of rotation and its requests are
    done, uploads included), restarts, waits until its API answers /healthcheck and
    haproxy has it back in rotation (a restart longer than haproxy's fall window marks
    it DOWN; it is UP again only after 2 good checks), and reports done, which lets the
    leader grant the next. The classic charm restarts every unit at once.

    Raises:
        WaitingError: another unit holds the lock (this unit keeps the old config).
        WorkloadError: glance-api did not come back after the restart.
    """
    workload.set_draining(False)  # a drain a dead hook left behind ends here
    peer = charm.model.get_relation(peers.ENDPOINT)
    if peer is None or not peer.units:  # alone: nothing to coordinate
        workload.ensure_running(restart=changed or workload.restart_needed())
        return
    unit, app = charm.unit, charm.app
    if workload.restart_needed():
        peers.request_restart(peer, unit, os.urandom(6).hex())
    grant_restart_lock(charm, peer)
    token = peers.restart_request(peer, unit)
    grant = peers.restart_grant(peer, app)
    if token and grant == (unit.name, token):
        server = server_name(unit.name)
        workload.set_draining(True)  # every haproxy stops sending new requests
        if not haproxy.wait_server_drained(server):
            logger.warning("haproxy does not show %s drained; restarting anyway", server)
        # its own haproxy shows only its own requests: behind a VIP held by another
        # unit it has none, while that unit's haproxy still has uploads running here
        if not workload.wait_idle(bind_port):
            logger.warning("glance-api still runs requests; restarting anyway")
        workload.ensure_running(restart=True)
        workload.set_draining(False)
        if not workload.wait_healthy(bind_port):
            raise WorkloadError("glance-api did not answer /healthcheck after restart")
        if not haproxy.wait_server_up(server):
            logger.warning("haproxy does not show %s UP; releasing the lock anyway", server)
        peers.finish_restart(peer, unit, token)
        grant_restart_lock(charm, peer)
    elif token:
        workload.ensure_running(restart=False)  # keep serving the old config
        raise WaitingError("Waiting for the rolling restart lock")
    else:
        workload.ensure_running(restart=False)


def grant_restart_lock(charm: ops.CharmBase, peer: ops.Relation) -> None:
    """On the leader: grant the lock to the next unit that asked (or keep the holder)."""
    if charm.unit.is_leader():
        peers.set_restart_grant(
            peer, charm.app, peers.next_restart_grant(peer, charm.app, charm.unit)
        )
