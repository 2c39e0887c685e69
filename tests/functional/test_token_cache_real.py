"""keystonemiddleware's token cache: the charm's memcached, used by the real glance-api.

The classic charm (openstack/charm-glance hooks/glance_utils.py with charmhelpers
contrib/openstack/context.py MemcacheContext and templates/section-keystone-authtoken-v3only)
runs memcached on every unit and sets `[keystone_authtoken] memcached_servers`; here the
charm's rendered config is shown to make the real glance-api cache validated tokens there:
the same token used twice is one cache write and then hits, read from memcached's own stats.
"""

from __future__ import annotations

import configparser
import socket

from tests.functional.driver import GLANCE_CONF, GlanceStack

PORT = 11211


def memcached_stats(url: str) -> dict[str, int]:
    """The `stats` counters of the memcached at the address in memcached_servers."""
    host = url.removeprefix("inet6:").rsplit(":", 1)[0].strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((host, PORT))
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            stats[parts[1]] = int(parts[2])
    return stats


def test_glance_api_caches_tokens_in_the_charms_memcached(stack: GlanceStack) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(GLANCE_CONF.read_text())
    url = parser["keystone_authtoken"]["memcached_servers"]
    assert url in ("inet6:[::1]:11211", "127.0.0.1:11211")
    client = stack.image_client()
    client.list_images()  # a token the cache has not seen: validated by keystone, then set
    before = memcached_stats(url)
    for _ in range(5):
        client.list_images()  # the same token again: served from the cache
    after = memcached_stats(url)
    print(f"\nmemcached: sets {before['cmd_set']}->{after['cmd_set']}, "
          f"hits {before['get_hits']}->{after['get_hits']}, items {after['curr_items']}")
    assert before["curr_items"] >= 1, "glance-api stored no token in memcached"
    assert after["get_hits"] - before["get_hits"] >= 5, "the cached token was not read back"
