"""Switch from a classic TLS unit: its apache2 site leaves 9282 (issue 13 item 8).

Follows charmhelpers contrib/openstack/context.py (ApacheSSLContext: site
`openstack_https_frontend`, certificates under /etc/apache2/ssl/glance/),
contrib/hahelpers/cluster.py (determine_apache_port: apache2 on 9282) and the site template
contrib/openstack/templates/openstack_https_frontend.conf. The layout is a real
/etc/apache2 tree under a temporary root. `a2dissite` is the real Debian script when this
machine has it, else a stand-in first on PATH that does what Debian's a2enmod does for
`a2dissite -q SITE` (remove $APACHE_CONFDIR/sites-enabled/SITE.conf); systemctl is a
stand-in that records argv and keeps unit state in files (no systemd here).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from glance_charm.domain import distro
from glance_charm.workload.classic_frontend import ClassicFrontend
from glance_charm.workload.files import RootedPaths
from glance_charm.workload.service import ServiceError, ServiceManager

FAKE_SYSTEMCTL = r"""#!/bin/sh
state="$FAKE_STATE"
echo "$*" >> "$state/argv"
if [ "$1" = is-active ]; then name="$3"; else name="$2"; fi
case "$1" in
  is-active) [ -e "$state/running-$name" ] ;;
  stop) rm -f "$state/running-$name" ;;
  reload) [ -e "$state/running-$name" ] ;;
  disable) rm -f "$state/enabled-$name" ;;
  mask) touch "$state/masked-$name" ;;
  *) exit 2 ;;
esac
"""

FAKE_A2DISSITE = r"""#!/bin/sh
# a2dissite -q SITE: what Debian's a2enmod does (honours APACHE_CONFDIR)
[ "$1" = -q ] || exit 2
link="${APACHE_CONFDIR:-/etc/apache2}/sites-enabled/$2.conf"
[ -L "$link" ] || { echo "ERROR: Site $2 does not exist!" >&2; exit 1; }
rm -f "$link"
"""

SITE = """Listen 9282
<VirtualHost 10.0.0.10:9282>
    ServerName 10.0.0.10
    SSLEngine on
    SSLCertificateFile /etc/apache2/ssl/{ns}/cert_10.0.0.10
    SSLCertificateKeyFile /etc/apache2/ssl/{ns}/key_10.0.0.10
    <Location />
        ProxyPass http://localhost:9272/
    </Location>
</VirtualHost>
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    scripts = {"systemctl": FAKE_SYSTEMCTL}
    if shutil.which(distro.A2DISSITE) is None:
        scripts[distro.A2DISSITE] = FAKE_A2DISSITE
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    (state / "running-apache2").touch()
    (state / "enabled-apache2").touch()
    return state


def layout(root: Path, sites: dict[str, str], enabled: list[str]) -> Path:
    conf = root / "etc/apache2"
    (conf / "sites-available").mkdir(parents=True)
    (conf / "sites-enabled").mkdir()
    (root / "var/lib/apache2").mkdir(parents=True)
    for name, text in sites.items():
        (conf / "sites-available" / f"{name}.conf").write_text(text)
    for name in enabled:
        (conf / "sites-enabled" / f"{name}.conf").symlink_to(f"../sites-available/{name}.conf")
    return conf


def frontend(root: Path) -> ClassicFrontend:
    return ClassicFrontend(paths=RootedPaths(root), services=ServiceManager(systemd=True,
                                                                          root=str(root)))


def argv(state: Path) -> list[str]:
    path = state / "argv"
    return path.read_text().splitlines() if path.exists() else []


def test_only_classic_site_disabled_then_apache2_stopped_and_kept_down(
        env: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = layout(root, {"openstack_https_frontend": SITE.format(ns="glance")},
                  ["openstack_https_frontend"])
    assert frontend(root).retire() is True
    assert not (conf / "sites-enabled/openstack_https_frontend.conf").exists()
    assert (conf / "sites-available/openstack_https_frontend.conf").exists()
    assert not (env / "running-apache2").exists()
    assert not (env / "enabled-apache2").exists()
    assert (env / "masked-apache2").exists()
    # a second hook finds nothing to do
    before = argv(env)
    assert frontend(root).retire() is False
    assert argv(env) == before


def test_other_sites_stay_and_apache2_reloads(env: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = layout(root, {"openstack_https_frontend": SITE.format(ns="glance"),
                         "000-default": "<VirtualHost *:80>\n</VirtualHost>\n"},
                  ["openstack_https_frontend", "000-default"])
    assert frontend(root).retire() is True
    assert not (conf / "sites-enabled/openstack_https_frontend.conf").exists()
    assert (conf / "sites-enabled/000-default.conf").is_symlink()
    assert "reload apache2" in argv(env)
    assert (env / "running-apache2").exists() and (env / "enabled-apache2").exists()
    assert not any(line.startswith(("stop", "disable", "mask")) for line in argv(env))


def test_another_charms_https_frontend_is_left_alone(env: Path, tmp_path: Path) -> None:
    """A co-located classic keystone uses the same site name for its own namespace."""
    root = tmp_path / "root"
    conf = layout(root, {"openstack_https_frontend": SITE.format(ns="keystone")},
                  ["openstack_https_frontend"])
    assert frontend(root).retire() is False
    assert (conf / "sites-enabled/openstack_https_frontend.conf").is_symlink()
    assert argv(env) == []


def test_no_apache2_is_nothing_to_do(env: Path, tmp_path: Path) -> None:
    assert frontend(tmp_path / "empty").retire() is False
    assert argv(env) == []


def test_a2dissite_failure_raises_and_leaves_apache2_running(
        env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    layout(root, {"openstack_https_frontend": SITE.format(ns="glance")},
           ["openstack_https_frontend"])
    failing = tmp_path / "failbin"
    failing.mkdir()
    (failing / distro.A2DISSITE).write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
    (failing / distro.A2DISSITE).chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing}:{os.environ['PATH']}")
    with pytest.raises(ServiceError, match="a2dissite"):
        frontend(root).retire()
    assert (env / "running-apache2").exists()
    assert not any(line.startswith("stop") for line in argv(env))
