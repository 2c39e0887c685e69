"""Retire the classic glance charm's apache2 TLS frontend after a switch to this charm.

A classic glance unit with TLS runs apache2 on 9282 (charmhelpers contrib/hahelpers/cluster.py
determine_apache_port) in front of glance-api, from the site `openstack_https_frontend`
(charmhelpers contrib/openstack/context.py ApacheSSLContext). This charm binds glance-api
itself to 9282, so that site must go before glance-api (re)starts. Only the site that serves
glance's own certificates (/etc/apache2/ssl/glance/) is disabled: another classic charm on the
same machine uses the same site name for its own namespace, and every other site stays.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from glance_charm.domain import distro
from glance_charm.workload.files import RootedPaths
from glance_charm.workload.service import ServiceError, ServiceManager, system_env

logger = logging.getLogger(__name__)


@dataclass
class ClassicFrontend:
    """The classic charm's apache2 site: find it, disable it, stop apache2 if nothing is left.

    Args:
        paths: maps the system's absolute paths (tests move the root).
        services: starts, stops and disables services.
    """

    paths: RootedPaths
    services: ServiceManager = field(default_factory=ServiceManager)

    @property
    def _confdir(self) -> Path:
        return self.paths(distro.APACHE_CONFDIR)

    def _enabled_site(self) -> Path | None:
        """The enabled classic glance site (``.conf`` on xenial and later, bare on trusty)."""
        enabled = self._confdir / "sites-enabled"
        for name in (f"{distro.CLASSIC_HTTPS_SITE}.conf", distro.CLASSIC_HTTPS_SITE):
            site = enabled / name
            if not site.exists():
                continue
            try:
                text = site.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if f"{distro.CLASSIC_HTTPS_SSL_DIR}/" in text:
                return site
        return None

    def _other_sites(self) -> list[str]:
        enabled = self._confdir / "sites-enabled"
        if not enabled.is_dir():
            return []
        # apache2.conf: IncludeOptional sites-enabled/*.conf
        return sorted(entry.name for entry in enabled.iterdir() if entry.name.endswith(".conf"))

    def retire(self) -> bool:
        """Disable the classic site; reload apache2, or stop it and keep it down at boot.

        Returns:
            Whether the site was enabled (and is now disabled).

        Raises:
            ServiceError: a2dissite or apache2's stop/reload failed (the site may still hold
                9282: glance-api must not be restarted onto it).
        """
        site = self._enabled_site()
        if site is None:
            return False
        env = dict(system_env(), APACHE_CONFDIR=str(self._confdir),
                   APACHE_STATE_DIRECTORY=str(self.paths(distro.APACHE_STATE_DIR)))
        cmd = [distro.A2DISSITE, "-q", distro.CLASSIC_HTTPS_SITE]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                    check=False, env=env)
        except OSError as err:
            raise ServiceError(f"{distro.A2DISSITE} failed: {err}") from None
        if result.returncode != 0 or site.exists():
            logger.error("%s failed (%s): %s", " ".join(cmd), result.returncode,
                         result.stderr.strip()[-500:])
            raise ServiceError(f"{distro.A2DISSITE} {distro.CLASSIC_HTTPS_SITE} failed")
        others = self._other_sites()
        if others:
            logger.info("classic TLS site disabled; apache2 keeps serving %s", ", ".join(others))
            if self.services.is_running(distro.APACHE_SERVICE):
                self.services.reload(distro.APACHE_SERVICE)
        else:
            logger.info("classic TLS site disabled; no other site: apache2 stopped and disabled")
            self.services.pause(distro.APACHE_SERVICE)
        return True
