#!/usr/bin/env python3
"""GlanceCharm: observes Juju events and reconciles the unit towards its config + relations."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import ops

from glance_charm.domain import distro
from glance_charm.domain.exceptions import (
    GlanceCharmError,
    RelationNotReadyError,
    WaitingError,
)
from glance_charm.workload.checklist import run_checks
from glance_charm.workload.glance import GlanceWorkload
from glance_charm.workload.haproxy import HaproxyWorkload
from glance_charm.workload.service import ServiceError
from glance_charm.workload.tls import TLSWorkload

if TYPE_CHECKING:
    from glance_charm.reconcile.reconciler import Reconciler

logger = logging.getLogger(__name__)

READY_MESSAGE = "Unit is ready"
PAUSED_MESSAGE = "Paused. Use 'resume' action to resume normal service."
CERTIFICATES = "certificates"  # relations.certificates.ENDPOINT, without loading it
# Bindings whose addresses the charm publishes or binds to: Juju runs config-changed when
# one of them changes, so config-changed compares them with the last reconciled ones.
WATCHED_BINDINGS = ("cluster", "shared-db", "public", "internal", "admin")

class GlanceCharm(ops.CharmBase):
    """Machine charm for OpenStack Glance."""

    workload_factory: Callable[[], GlanceWorkload] = GlanceWorkload
    haproxy_factory: Callable[[], HaproxyWorkload] = HaproxyWorkload
    tls_factory: Callable[[], TLSWorkload] = TLSWorkload
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework) -> None:
        super().__init__(framework)
        self._stored.set_default(ceph_pool={}, paused=False, origin=None, tls_active=False,
                                 tls_source="", tls_request="", stores_in_use={},
                                 last_status=None, fingerprint="", leader=None)
        # the dpkg database stamp and the workload version last shown (item 10)
        self._stored.set_default(package_stamp=-1, workload_version="")
        # whether glance-api.conf points at the local memcached (the token cache)
        self._stored.set_default(token_cache=False)
        self.workload = self.workload_factory()
        self.haproxy = self.haproxy_factory()
        self._problem: GlanceCharmError | None = None
        self._reconciled = False
        # The TLS library (and cryptography, ~0.1 s) only in hooks where the relation
        # exists, or is being broken (the library then removes the key's secret). Built
        # before observing, so its handlers run before the reconcile reads the certificate.
        if (self.model.relations.get(CERTIFICATES)
                or os.environ.get("JUJU_RELATION") == CERTIFICATES):
            self.reconciler.frontend.ensure_requirer()
        observe = self.framework.observe
        for event in (
            self.on.install, self.on.upgrade_charm, self.on.leader_elected,
            self.on.secret_changed,
        ):
            observe(event, self._on_event)
        observe(self.on.update_status, self._on_update_status)
        observe(self.on.start, self._on_start)
        observe(self.on.config_changed, self._on_config_changed)
        for name in self.meta.relations:
            for kind in ("relation_created", "relation_joined", "relation_changed",
                         "relation_departed",
                         "relation_broken"):
                observe(getattr(self.on[name], kind), self._on_event)
        observe(self.on.collect_unit_status, self._on_collect_status)
        observe(self.on.pause_action, self._on_pause)
        observe(self.on.resume_action, self._on_resume)
        observe(self.on.openstack_upgrade_action, self._on_openstack_upgrade)
        observe(self.on.security_checklist_action, self._on_security_checklist)

    @cached_property
    def tls(self) -> TLSWorkload:
        """TLS files for haproxy (built when a hook first needs them)."""
        return type(self).tls_factory()

    @cached_property
    def reconciler(self) -> Reconciler:
        """The reconcile layer: the one place the charm's way into it is imported.

        pydantic, jinja2 and the relation adapters load with it, so a steady
        update-status, which never reconciles, loads none of them.
        """
        from glance_charm.reconcile.reconciler import Reconciler

        return Reconciler(self, self._stored, self.workload, self.haproxy, lambda: self.tls)

    # ---- events ---------------------------------------------------------------------------
    def _on_event(self, event: ops.EventBase) -> None:
        # the packages may have changed under an install or a new charm: show their version
        self._run_reconcile(
            packages_changed=isinstance(event, (ops.InstallEvent, ops.UpgradeCharmEvent)))

    def _run_reconcile(self, upgrade_now: bool = False,
                       packages_changed: bool = False) -> str | None:
        """Reconcile; keep its outcome for collect-status. Return the version upgraded to."""
        self._reconciled = True
        self._problem = None
        upgraded = None
        try:
            upgraded = self._reconcile(upgrade_now)
        except GlanceCharmError as err:
            self._problem = err
        if self._stored.paused:
            self._hold_paused()
        self._refresh_workload_version(force=packages_changed or upgraded is not None)
        # What config-changed compares with: only a complete, active reconcile counts.
        self._stored.fingerprint = "" if self._problem or self._stored.paused else (
            self._fingerprint()
        )
        self._stored.leader = self.unit.is_leader()
        return upgraded

    def _on_update_status(self, event: ops.UpdateStatusEvent) -> None:
        """Reconcile only when something is owed: a steady unit runs no tool and no render.

        Steady: the last hook left the unit active with the same leadership, glance-api
        and haproxy run, and no restart or reload is pending. Otherwise (a failed restart,
        a service that died, a status still waiting on time) it reconciles as every other
        hook does.
        """
        self._refresh_workload_version()
        if self._stored.paused:
            self._hold_paused()
            return
        if self._steady():
            return
        self._on_event(event)

    def _on_start(self, event: ops.StartEvent) -> None:
        """After a (re)boot: a paused unit keeps its services down; others as update-status."""
        self._on_update_status(event)  # type: ignore[arg-type]

    def _hold_paused(self) -> None:
        """Stop glance-api and haproxy if anything started them while the unit is paused.

        Without systemd nothing masks them: a SysV boot whose links were re-enabled, or an
        operator's `service glance-api start`, would otherwise serve a paused unit.
        """
        for name, workload in (("glance-api", self.workload), ("haproxy", self.haproxy)):
            try:
                if workload.is_running():
                    logger.warning("%s runs although the unit is paused: stopping it", name)
                    workload.stop()
            except ServiceError:
                logger.error("stopping %s (paused) failed", name)
        self.reconciler.withdraw_image_service()  # a paused unit serves no image

    def _refresh_workload_version(self, force: bool = False) -> None:
        """Show the installed glance version in `juju status` when it may have changed.

        Only after an install, upgrade-charm or openstack upgrade, or when dpkg's database
        changed since the last look (one stat): a steady hook runs no tool and no process.
        """
        stamp = self.workload.package_stamp()
        if not force and stamp == self._stored.package_stamp:
            return
        self._stored.package_stamp = stamp
        version = self.workload.workload_version()
        if version and version != self._stored.workload_version:
            self.unit.set_workload_version(version)
            self._stored.workload_version = version

    def _on_config_changed(self, event: ops.ConfigChangedEvent) -> None:
        """Reconcile unless config and addresses are what the last active reconcile saw.

        Juju runs config-changed after an option or a binding address changed (and at
        start and after upgrade-charm, which reconcile themselves); relation data and
        leadership have their own hooks.
        """
        if self._steady() and self._stored.fingerprint == self._fingerprint():
            return
        self._on_event(event)

    def _steady(self) -> bool:
        last = self._stored.last_status
        return (
            last is not None and list(last) == ["active", READY_MESSAGE]
            and not self._stored.paused
            and self._stored.leader == self.unit.is_leader()  # ops asks is-leader anyway
            and not self.workload.restart_needed() and not self.haproxy.reload_needed()
            and not self.workload.draining()
            and self.workload.is_running() and self.haproxy.is_running()
            and (not self._stored.token_cache
                 or self.workload.services.is_running(distro.MEMCACHED_SERVICE))
        )

    def _fingerprint(self) -> str:
        """Digest of the config and the watched bindings' addresses (no secret in clear)."""
        addresses: dict[str, list[str] | None] = {}
        for name in WATCHED_BINDINGS:
            try:
                binding = self.model.get_binding(name)
                network = binding.network if binding is not None else None
            except (ops.ModelError, KeyError):  # not a binding this Juju knows
                network = None
            addresses[name] = None if network is None else [
                str(network.bind_address), *(str(a) for a in network.ingress_addresses)
            ]
        state = {"config": dict(self.config), "addresses": addresses}
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        """The one place that turns the outcome of the hook into a unit status.

        A hook that reconciled nothing (a steady update-status, an action) leaves the
        status as it is, and so does one whose outcome equals the status already set:
        status-set is not called again (one hook-tool call less per hook).
        """
        status = self._outcome_status()
        if status is None:
            return
        current = [status.name, status.message]
        if self._stored.last_status is not None and list(self._stored.last_status) == current:
            return
        self._stored.last_status = current
        event.add_status(status)

    def _outcome_status(self) -> ops.StatusBase | None:
        problem = self._problem
        if self._stored.paused:
            return ops.MaintenanceStatus(PAUSED_MESSAGE)
        if problem is None and not self._reconciled:
            return None
        if problem is None:
            return ops.ActiveStatus(READY_MESSAGE)
        if isinstance(problem, RelationNotReadyError):
            status_cls = ops.BlockedStatus if problem.blocked else ops.WaitingStatus
            return status_cls(problem.message)
        if isinstance(problem, WaitingError):
            return ops.WaitingStatus(str(problem))
        return ops.BlockedStatus(str(problem))  # InvalidConfigError, BlockedError, ...

    # ---- reconcile ------------------------------------------------------------------------
    def _reconcile(self, upgrade_now: bool = False) -> str | None:
        """Run the one reconcile path (see glance_charm.reconcile.reconciler)."""
        return self.reconciler.run(upgrade_now=upgrade_now)

    # ---- actions --------------------------------------------------------------------------
    def _on_pause(self, event: ops.ActionEvent) -> None:
        """Stop glance-api and keep it stopped across hooks until resume."""
        self._stored.paused = True
        try:  # stopped, and disabled (masked on systemd) so a reboot keeps them down
            self.workload.pause()
            self.haproxy.services.pause(self.haproxy.service)
        except ServiceError:
            event.fail("stopping glance-api failed; see the unit log")
            return
        self.reconciler.withdraw_image_service()
        event.set_results({"outcome": "paused"})

    def _on_resume(self, event: ops.ActionEvent) -> None:
        """Let the services start at boot again, then reconcile (which starts them)."""
        try:
            self.workload.resume()
            self.haproxy.services.enable_boot(self.haproxy.service)
        except ServiceError:
            event.fail("enabling glance-api at boot failed; see the unit log")
            return
        self._stored.paused = False
        self._on_event(event)
        if self._problem is not None:
            event.fail(f"resumed, but: {self._problem}")
            return
        event.set_results({"outcome": "resumed"})

    def _on_openstack_upgrade(self, event: ops.ActionEvent) -> None:
        """Upgrade to `openstack-origin` now (the path when action-managed-upgrade is true).

        The upgrade runs inside the one reconcile every hook runs; the action fails when
        the upgraded configuration could not be applied.
        """
        try:
            config = self.reconciler.config()
        except GlanceCharmError as err:
            event.fail(str(err))
            return
        if not config.action_managed_upgrade:
            event.fail("action-managed-upgrade is false: changing openstack-origin upgrades")
            return
        if not self.reconciler.origin_changed(config):
            event.set_results({"outcome": "no upgrade available"})
            return
        version = self._run_reconcile(upgrade_now=True)
        if version is None or not self.reconciler.applied:
            event.fail(f"upgrade incomplete: {self._problem}")
            return
        event.set_results({"outcome": f"upgraded to {config.openstack_origin}",
                           "version": version})

    def _on_security_checklist(self, event: ops.ActionEvent) -> None:
        """Report the OpenStack security guide's glance checks, pass/fail each."""
        results = run_checks(self.workload.paths, self.workload.group)
        event.set_results({name.replace("_", "-"): "PASS" if ok else f"FAIL: {why}"
                           for name, (ok, why) in results.items()})
        failed = [name for name, (ok, _) in results.items() if not ok]
        if failed:
            event.fail(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")


def use_libyaml() -> None:
    """Have ops parse metadata/config/actions.yaml with libyaml (~17 ms less per hook).

    ops reads the three files with `yaml.safe_load`, PyYAML's pure-Python parser, in every
    hook; PyYAML's wheel also ships the same safe loader in C (`CSafeLoader`).
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        yaml.safe_load = functools.partial(yaml.load, Loader=loader)


def _not_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def quiet_root_logger() -> None:
    """Drop DEBUG records logged on the root logger itself (hook processes only).

    ops logs two DEBUG lines on the root logger in every hook ("ops ... up and running",
    "Emitting Juju event ..."), each a juju-log round-trip to the agent. The filter acts
    only on records logged on the root logger directly: the charm's and the libraries'
    own loggers (DEBUG included) are untouched.
    """
    root = logging.getLogger()
    if _not_debug not in root.filters:
        root.addFilter(_not_debug)


def main() -> None:
    """The hook process: set-up that must not happen at import, then ops."""
    use_libyaml()
    quiet_root_logger()
    ops.main(GlanceCharm)


if __name__ == "__main__":  # pragma: nocover
    main()
