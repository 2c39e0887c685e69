"""TLS files for haproxy: the PEM it serves and the CA joined to the system trust store."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glance_charm.domain.tls_material import TLSMaterial
from glance_charm.workload import files

logger = logging.getLogger(__name__)

PEM_PATH = "/etc/haproxy/glance.pem"  # certificate + chain + key, read by haproxy as root
CA_PATH = "/usr/local/share/ca-certificates/glance-charm-ca.crt"  # joins the system store
CA_REFRESH_TIMEOUT = 120


# ---- files --------------------------------------------------------------------------------
@dataclass
class TLSPaths(files.RootedPaths):
    """Where the TLS files live, under a root that tests may move."""

    @property
    def pem(self) -> Path:
        """Certificate + chain + key for haproxy."""
        return self(PEM_PATH)

    @property
    def ca(self) -> Path:
        """The CA, in the directory update-ca-certificates reads."""
        return self(CA_PATH)


@dataclass
class TLSWorkload:
    """Write (and remove) haproxy's PEM (0600 root) and the CA (0644, system trust store)."""

    paths: TLSPaths = field(default_factory=TLSPaths)
    owner: str = "root"
    group: str = "root"

    def specs(self, material: TLSMaterial) -> list[files.FileSpec]:
        """The files this material needs (nothing is written)."""
        specs = [files.FileSpec(self.paths.pem, material.combined_pem(), 0o600,
                                self.owner, self.group)]
        if material.ca:
            specs.append(files.FileSpec(self.paths.ca, material.ca.encode(), 0o644,
                                        self.owner, self.group))
        return specs

    def write(self, material: TLSMaterial, before_pem_change: Callable[[], None]) -> bool:
        """Write what differs; check the material first. Return whether the PEM changed.

        Args:
            material: what to serve.
            before_pem_change: called before the PEM is replaced (haproxy owes a reload
                from then on, even if this hook dies before it reloads).

        Raises:
            MaterialError: the material is unusable (nothing is written).
        """
        pem_spec, *ca_specs = self.specs(material)
        pending = [spec for spec in (pem_spec, *ca_specs) if not files.is_current(spec)]
        if pending:
            material.check()
            if pem_spec in pending:
                before_pem_change()
            for spec in pending:
                files.write(spec)
                logger.info("wrote %s (TLS from %s)", spec.path, material.source)
        if ca_specs:
            ca_changed = ca_specs[0] in pending
        else:
            ca_changed = self.paths.ca.exists() and files.remove(self.paths.ca)
        if ca_changed:
            self.refresh_ca_store()
        return pem_spec in pending

    def has_pem(self) -> bool:
        """Whether a PEM from an earlier hook is in place."""
        return self.paths.pem.exists()

    def remove(self) -> bool:
        """Remove the PEM and the CA; return whether anything was there."""
        removed = self.paths.pem.exists() and files.remove(self.paths.pem)
        if self.paths.ca.exists() and files.remove(self.paths.ca):
            self.refresh_ca_store()
            removed = True
        if removed:
            logger.info("removed the TLS files")
        return removed

    def refresh_ca_store(self) -> None:
        """Rebuild the system trust store (update-ca-certificates); a failure is logged."""
        try:
            result = subprocess.run(["update-ca-certificates"], capture_output=True, text=True,
                                    timeout=CA_REFRESH_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            logger.error("update-ca-certificates did not run: %s", type(err).__name__)
            return
        if result.returncode != 0:
            logger.error("update-ca-certificates failed with exit code %s", result.returncode)
