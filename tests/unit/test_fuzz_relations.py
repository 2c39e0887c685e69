"""Property-based fuzzing of every relation endpoint glance reads, and of its config.

Each endpoint gets one harness, brought to a known good state (Active, files written).
Every example puts the relation data back to that state (without a hook: what is on disk
is whatever the previous example left, so good->bad, bad->good and bad->bad transitions all
happen), then plays generated actions, one hook each: a remote unit's whole bag replaced
by random, malformed or valid data (missing keys, wrong types as strings, garbage JSON,
100 KB values, unicode, control characters, `__null__`), the remote app bag replaced,
units joining and departing in any order, leadership flipping. After every hook:

* no exception escapes the hook (Harness re-raises it here);
* the unit status is one of the documented messages (STATUS_RULES);
* when the status says the charm stopped before applying (missing/incomplete database or
  identity, invalid config, ...) no managed file changed: the last good config stays;
* a restart happens at most once per hook, never without a changed restart-relevant file,
  and no restart stays owed once the unit is Active;
* whenever config was applied, it says exactly what the remote sent, read back the way
  its consumers read it (oslo.config's value quoting, SQLAlchemy's URL grammar, urlsplit).

Speed (a hook costs ~2 ms, hypothesis ~3 ms per example; a Context/State run of this
charm costs ~20 ms, so Harness it is): one Harness per test function; templates compiled
once (rendering keeps one jinja Environment per process, and `_shared_environments` hands
any other caller the same one); fsync skipped and
files on tmpfs (atomicity is what test_crash_recovery checks); `haproxy -c` stubbed
(test_haproxy runs the real one); values sampled from seeded corpora. Examples per endpoint:
150 in `make test` (FUZZ_PROFILES["ci"], sized for its 10-minute budget), 2,000 in `make fuzz`
(GLANCE_FUZZ_PROFILE=full, the release check), 20,000 with `-m slow`;
GLANCE_FUZZ_EXAMPLES=N overrides all three.
Counts (examples, hooks, bad inputs, statuses, known-bug hits) are printed at the end.
"""

from __future__ import annotations

import base64
import collections
import functools
import ipaddress
import json
import os
import random
import re
import stat
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
import ops
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glance_charm.domain import policy, stores
from glance_charm.domain.config import OWNED_FLAGS, S3_INCOMPLETE
from glance_charm.reconcile import reconciler
from glance_charm.relations import ha as ha_relation
from tests.fixtures import load
from tests.unit.conftest import GLANCE_VERSION, GlanceHarness

# Examples per endpoint. `make test` (the "ci" profile) is sized so the whole `make test` stays
# within 10 minutes on a 2-core machine; `make fuzz` (GLANCE_FUZZ_PROFILE=full, what a release
# check runs) plays the full 2,000; `-m slow` plays 20,000.
FUZZ_PROFILES = {"ci": 150, "full": 2_000}
PROFILE_ENV = "GLANCE_FUZZ_PROFILE"
SLOW_EXAMPLES = 20_000
UNIT = "glance/0"
ADDRESS = "10.5.0.100"
ROOT = Path(__file__).resolve().parents[2]

# Bugs reported to the charm authors; each has a strict-xfail regression test at the end
# of this file. While an entry is here the fuzzers step around that one input class
# (counted as "known-bug hits"); delete the entry with the xfail mark once src/ is fixed.
KNOWN_BUGS: dict[str, str] = {}

STATS: collections.Counter[tuple[str, str]] = collections.Counter()


# ---- documented statuses ----------------------------------------------------------------
_GROUP = r"(?:database|identity|messaging|storage-backend|ha)"
_GROUPS = rf"{_GROUP}(?:, {_GROUP})*"
_WAIT_NOTE = re.escape(stores.BROKER_PENDING)
_FAIL_NOTE = r"Ceph broker request failed: [^\x00-\x1f\x7f]{1,100}"
_NOTES = rf"(?:, (?:{_WAIT_NOTE}|{_FAIL_NOTE}))*"
_DB_ENDPOINTS = r"(?:db|database|shared-db)"

# (kind, status class, full-match regex). Kinds in PRE_APPLY stop before any file is written.
STATUS_RULES: list[tuple[str, type[ops.StatusBase], str]] = [
    ("ready", ops.ActiveStatus, "Unit is ready"),
    ("relations", ops.BlockedStatus,
     rf"Missing relations: {_GROUPS}(?:; incomplete relations: {_GROUPS})?{_NOTES}"),
    ("relations", ops.WaitingStatus, rf"Incomplete relations: {_GROUPS}(?:, {_WAIT_NOTE})*"),
    ("relations", ops.BlockedStatus, rf"Incomplete relations: {_GROUPS}{_NOTES}"),
    ("storage", ops.WaitingStatus, _WAIT_NOTE),
    ("storage", ops.BlockedStatus, rf"{_FAIL_NOTE}(?:, {_WAIT_NOTE})?"),
    ("config", ops.BlockedStatus, r"Invalid config: [a-z0-9_-]+(?:, [a-z0-9_-]+)*"),
    ("config-flags", ops.BlockedStatus,
     re.escape(OWNED_FLAGS) + r": [A-Za-z_][A-Za-z0-9_.-]*(?:, [A-Za-z_][A-Za-z0-9_.-]*)*"),
    ("s3", ops.BlockedStatus, re.escape(S3_INCOMPLETE)
     + r" s3-store-[a-z-]+(?:, s3-store-[a-z-]+)*"),
    ("policy", ops.BlockedStatus,
     re.escape(policy.STATUS_PREFIX) + r": [^\x00-\x1f\x7f]{1,300}"),
    ("multiple-db", ops.BlockedStatus,
     rf"Multiple database relations: {_DB_ENDPOINTS}(?:, {_DB_ENDPOINTS})+"),
    ("db-init", ops.WaitingStatus, "Waiting for database initialisation by leader"),
    ("peer", ops.WaitingStatus, "Waiting for peer relation"),
    ("install", ops.BlockedStatus, r"Package installation failed; will retry"),
    ("install", ops.BlockedStatus, r"glance-api is not installed after apt; will retry"),
    ("install", ops.BlockedStatus, r"Installing [a-z0-9.+-]+ failed; will retry"),
    ("workload", ops.BlockedStatus, r"glance-api failed to start; see its log"),
    ("install", ops.BlockedStatus, r"Package upgrade failed; will retry"),
    ("workload", ops.BlockedStatus,
     r"glance-api is not installed after the upgrade; will retry"),
    # haproxy in front of glance-api (written after glance's own files)
    ("haproxy", ops.BlockedStatus, r"haproxy rejected the generated configuration"),
    ("haproxy", ops.BlockedStatus, r"haproxy is not installed"),
    ("haproxy", ops.BlockedStatus, r"haproxy -c did not finish; will retry"),
    ("haproxy", ops.BlockedStatus, r"haproxy failed to start or reload; see its log"),
    ("workload", ops.BlockedStatus,
     re.escape("Database migration (glance-manage db_sync) failed; will retry")),
    ("default-store", ops.BlockedStatus,
     r"default-store: (?:local|swift|ceph|s3|cinder) is not related/ready "
     r"\(ready: [a-z0-9, ]+\)"),
    ("ha-store", ops.BlockedStatus, re.escape(stores.HA_NEEDS_SHARED_STORE)),
    ("ha", ops.BlockedStatus, re.escape(ha_relation.MISSING_VIP)),
    ("ha", ops.BlockedStatus, re.escape("hacluster missing configuration: vip, vip_iface, "
                                        "vip_cidr")),
    ("ha", ops.BlockedStatus,
     r"\d+ units need a virtual IP: set vip and relate hacluster \(or enable dns-ha\)"),
    ("ha", ops.WaitingStatus, "Waiting for hacluster to report clustered"),
    ("ha", ops.BlockedStatus, re.escape(ha_relation.DNS_HA_WITHOUT_HOSTNAME)),
    ("cos", ops.BlockedStatus,
     re.escape("cos-agent: the charm's alert rules or dashboards are unreadable")),
    ("nrpe", ops.BlockedStatus,
     r"nrpe-external-master: invalid (?:nagios_hostname|nagios_host_context)"),
    ("database", ops.WaitingStatus, re.escape(reconciler.DB_NOT_GRANTED)),
    ("paused", ops.MaintenanceStatus,
     re.escape("Paused. Use 'resume' action to resume normal service.")),
    ("busy", ops.MaintenanceStatus,
     r"Installing packages|Installing Ceph packages|Upgrading to \S+"),
]
PRE_APPLY = {"config", "config-flags", "s3", "policy", "multiple-db", "default-store",
             "ha-store", "install", "haproxy"}


def classify(status: ops.StatusBase) -> str:
    """The kind of a documented status; fail on anything undocumented."""
    for kind, cls, pattern in STATUS_RULES:
        if isinstance(status, cls) and re.fullmatch(pattern, status.message):
            return kind
    raise AssertionError(f"undocumented status {status!r}")


def stopped_before_apply(kind: str, message: str) -> bool:
    """Whether this status comes from a check that runs before any file is written."""
    if kind in PRE_APPLY:
        return True
    # Read before anything is written. storage-backend too, here: every fuzzed store is in
    # the written config from the base state on, and a store in use whose data turns
    # unusable keeps the last good config (a new store that is not ready would not).
    groups = r"\b(?:database|identity|messaging|storage-backend)\b"
    return kind == "relations" and re.search(groups, message) is not None


# ---- reading config back the way its consumers do ----------------------------------------
def oslo_value(raw: str) -> str:
    """A value as oslo.config's iniparser reads it (strip, one quote pair, `$$` -> `$`)."""
    value = raw.strip()
    if value and value[0] == value[-1] and value.startswith(('"', "'")):
        value = value[1:-1]
    return value.replace("$$", "$")


def read_ini(path: Path) -> dict[str, dict[str, str]]:
    """Strict parse (a duplicate section/option from an injected newline fails)."""
    return _parse_ini(path.read_text())


@functools.lru_cache(maxsize=64)
def _parse_ini(text: str) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None, default_section="\0", strict=True)
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections()}


# The grammar of sqlalchemy.engine.url._parse_url (SQLAlchemy 2.0): what oslo.db sees.
_SA_URL = re.compile(r"""
    (?P<name>[\w\+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/\?]+)\]|(?P<ipv4host>[^/:\?]+))?(?::(?P<port>[^/\?]*))?)?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
""", re.X)


@dataclass(frozen=True)
class DbUrl:
    user: str
    password: str
    host: str | None
    port: int | None
    database: str | None


def parse_db_url(url: str) -> DbUrl:
    match = _SA_URL.fullmatch(url)
    assert match, f"SQLAlchemy cannot parse {url!r}"
    port = match["port"]
    assert not port or port.isdigit(), f"SQLAlchemy would fail on port {port!r} in {url!r}"
    return DbUrl(
        user=unquote(match["username"] or ""), password=unquote(match["password"] or ""),
        host=match["ipv4host"] or match["ipv6host"], port=int(port) if port else None,
        database=match["database"],
    )


def clean(value: object) -> str | None:
    """Independent restatement of the documented cleaning: strip; '' and __null__ are unset."""
    if not isinstance(value, str) or not value.strip() or value.strip() == "__null__":
        return None
    return value.strip()


def as_int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def ambiguous_host(host: str) -> bool:
    """A host SQLAlchemy/urllib would split differently (a ':' outside an IPv6 literal...)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return any(char in host for char in ":[]%") or host != host.strip()


def quote_wrapped(value: str | None) -> bool:
    return bool(value) and value[0] == value[-1] and value[0] in "\"'"  # type: ignore[index]


# ---- strategies: junk -------------------------------------------------------------------
HUGE = "x" * 100_000
DEEP_JSON = "[" * 100_000
_JUNK_WORDS = [
    "", " ", "\t", "__null__", " __null__ ", "abc", "-1", "0", "65536", "99999999999999999999",
    "1e3", " 3306 ", "3306\n", "0x10", "\x00", "\n", "a\nb", "a\r\nb", "\x7f", "[", "{", "null",
    "true", "[]", "{}", '""', "'q'", '"q"', "$HOME", "$$", "%s", "%(x)s", "a:b", "::", ":",
    "[::1]", "[fd00::1]:3306", "a b", "a/b", "a@b", "a?b", "a#b", "ü", "\u202e", "😀", "\ufeff",
    "glance/0", "glance/1", "http://x", "https://", "yes", "no", "[client.admin]", "key = v",
]
# Values come from corpora built once from a fixed seed (a sampled value is one choice for
# hypothesis, a generated string one per character: this keeps 2,000 examples affordable),
# plus a little free text hypothesis makes up itself.
_RNG = random.Random(6)  # noqa: S311 - a reproducible corpus, not a secret
_CHAR_RANGES = [(0, 0x80), (0, 0x100), (0x20, 0xD800), (0xE000, 0x110000)]


def _random_text(rng: random.Random, max_len: int = 16) -> str:
    low, high = rng.choice(_CHAR_RANGES)
    return "".join(chr(rng.randrange(low, high)) for _ in range(rng.randrange(max_len + 1)))


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    scalars: list[Any] = [None, True, False, 0, 1, -1, 2**63, rng.randrange(-1000, 1000), 0.5,
                          -0.0, 1e308, rng.random(), _random_text(rng, 8), *_JUNK_WORDS]
    kind = rng.randrange(3 if depth < 3 else 1)
    if kind == 0:
        return rng.choice(scalars)
    if kind == 1:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_random_text(rng, 6): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


JUNK_POOL = [*_JUNK_WORDS, *(_random_text(_RNG) for _ in range(300)),
             HUGE, "ü" * 50_000, "glance/0 " * 10_000, "\n" * 1000]
JSON_POOL = [json.dumps(_random_json(_RNG)) for _ in range(200)] + [
    "[1,", '{"exit-code": ', '{"exit-code": "0"}', '{"exit-code": 0.0}', '{"exit-code": true}',
    '{"exit-code": null}', '["glance/0"]', '"glance/0"', "[[[[]]]]", '{"a": ' * 1000,
    DEEP_JSON]
_junk = st.sampled_from(JUNK_POOL)
junk_text = st.one_of(_junk, _junk, _junk, st.text(max_size=8))
junk_json = st.one_of(st.sampled_from(JSON_POOL), junk_text)
extra_key = st.sampled_from(["x", "foo-bar", "private-address", "egress-subnets", "__null__",
                             "ingress-address", "a_b", "unit-name", "broker_req"])


@dataclass(frozen=True)
class Bag:
    """Generated data for one bag, and whether it was generated as bad input."""

    data: dict[str, str]
    bad: bool


def bags(valid: st.SearchStrategy[dict[str, str]],
         junk_fields: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[Bag]:
    """Valid bags, valid bags with fields broken or dropped, and bags of pure junk."""
    keys = sorted(junk_fields)

    @st.composite
    def mutated(draw: st.DrawFn) -> Bag:
        data = dict(draw(valid))
        for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
            if draw(st.booleans()):
                data.pop(key, None)
            else:
                data[key] = draw(junk_fields[key])
        if draw(st.booleans()):
            data[draw(extra_key)] = draw(junk_text)
        return Bag(data, True)

    @st.composite
    def random_bag(draw: st.DrawFn) -> Bag:
        chosen = draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True))
        return Bag({key: draw(junk_fields[key]) for key in chosen}, True)

    return st.one_of(valid.map(lambda data: Bag(dict(data), False)), mutated(), mutated(),
                     random_bag())


# ---- strategies: plausible values ---------------------------------------------------------
_IPV4 = ["0.0.0.0", "127.0.0.1",  # noqa: S104 - data, not a bind "10.5.0.42", "255.255.255.255",
         *(str(ipaddress.IPv4Address(_RNG.getrandbits(32))) for _ in range(60))]
_IPV6 = ["::1", "fd00::5", "::ffff:10.0.0.1", "fe80::1",
         *(str(ipaddress.IPv6Address(_RNG.getrandbits(128))) for _ in range(60))]
_LABELS = ["db", "mysql", "node-3", "a", "keystone", "mon1", "example", "x-y", "maas", "Z9"]
_HOSTNAMES = [".".join(_RNG.choice(_LABELS) for _ in range(_RNG.randrange(1, 4)))
              + str(_RNG.randrange(100)) for _ in range(60)]
ipv4 = st.sampled_from(_IPV4)
ipv6 = st.sampled_from(_IPV6)
hostname = st.sampled_from(_HOSTNAMES)
host = st.sampled_from(_IPV4 + _IPV6 + _HOSTNAMES)
port = st.integers(1, 65535).map(str)
_PASSWORD_CHARS = string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~"
_PASSWORDS = ["ps79JWXDmmgPW4Ro51g9BBV4yaFFqDBD", "p@ss/w:rd", "100%$HOME", "a?b#c[d]",
              "$$", "'", '"', "x" * 200, "ü-ñ-密码", "%41", "~!^&*()+={}|;<>,.",
              *("".join(_RNG.choice(_PASSWORD_CHARS) for _ in range(_RNG.randrange(1, 40)))
                for _ in range(100))]  # no whitespace: providers send none
password = st.sampled_from(_PASSWORDS)
name = st.sampled_from(["glance", "images", "G_1", "x", "database_7", "a" * 32,
                        *("".join(_RNG.choice(string.ascii_letters + string.digits + "_")
                                  for _ in range(_RNG.randrange(1, 33))) for _ in range(40))])


# ---- harness world ----------------------------------------------------------------------
@dataclass
class World:
    """One fuzzed relation on a harness, with the state every example starts from."""

    gh: GlanceHarness
    endpoint: str
    rel_id: int
    units: list[str]
    base_units: dict[str, dict[str, str]]
    base_app: dict[str, str] = field(default_factory=dict)
    remote_app: str = ""
    leader: bool = True
    bad_inputs: int = 0

    @classmethod
    def create(cls, gh: GlanceHarness, endpoint: str, remote_app: str, n_units: int,
               base_units: Mapping[str, Mapping[str, str]],
               base_app: Mapping[str, str] | None = None) -> World:
        if endpoint == "cluster":  # the peer relation exists from the start
            peer = gh.harness.model.get_relation("cluster")
            assert peer is not None
            rel_id = peer.id
        else:
            rel_id = gh.harness.add_relation(endpoint, remote_app)
        world = cls(gh, endpoint, rel_id, [f"{remote_app}/{i}" for i in range(n_units)],
                    {k: dict(v) for k, v in base_units.items()}, dict(base_app or {}),
                    remote_app)
        world.reset()
        gh.harness.charm.on.update_status.emit()
        assert classify(gh.status()) == "ready", "the base state must be ready"
        return world

    @property
    def harness(self) -> Any:
        return self.gh.harness

    def present(self) -> list[str]:
        return sorted(u.name for u in self.relation().units)

    def relation(self) -> ops.Relation:
        relation = self.harness.model.get_relation(self.endpoint, self.rel_id)
        assert relation is not None
        return relation

    def bag(self, owner: str) -> dict[str, str]:
        return dict(self.harness.get_relation_data(self.rel_id, owner) or {})

    def set_bag(self, owner: str, data: Mapping[str, str]) -> bool:
        """Replace the whole bag (keys not in data are deleted) in one relation-changed."""
        current = self.bag(owner)
        update = {key: "" for key in current if key not in data}
        update.update({k: v for k, v in data.items() if current.get(k) != v})
        if update:
            self.harness.update_relation_data(self.rel_id, owner, update)
        return bool(update)

    def app_owner(self) -> str:
        return self.harness.model.app.name if self.endpoint == "cluster" else self.remote_app

    def reset(self) -> None:
        """Put the relation data back to the base state, without a hook.

        The first action's hook then sees base data plus that action. What is on disk is
        whatever the previous example left: the last good config, or no config.
        """
        harness = self.harness
        with harness.hooks_disabled():
            for unit in self.present():
                if unit not in self.base_units:
                    harness.remove_relation_unit(self.rel_id, unit)
            for unit, data in self.base_units.items():
                if unit not in self.present():
                    harness.add_relation_unit(self.rel_id, unit)
                self.set_bag(unit, data)
            self.set_bag(self.app_owner(), self.base_app)
            if harness.model.unit.is_leader() != self.leader:
                harness.set_leader(self.leader)

    def apply(self, action: tuple[Any, ...]) -> int:
        """Play one action as Juju would deliver it; return how many hooks ran."""
        kind = action[0]
        hooks = 0
        if kind == "join":
            self.harness.add_relation_unit(self.rel_id, self.units[action[1]])
            hooks += 1
        elif kind == "unit":
            unit = self.units[action[1]]
            bag: Bag = action[2]
            self.bad_inputs += bag.bad
            assert unit in self.present(), "play() joins the unit first"
            hooks += self.set_bag(unit, bag.data)  # relation-changed
        elif kind == "app":
            bag = action[1]
            self.bad_inputs += bag.bad
            changed = self.set_bag(self.app_owner(), bag.data)
            leader_own = self.endpoint == "cluster" and self.harness.model.unit.is_leader()
            hooks += changed and not leader_own  # no relation-changed for the leader's bag
        elif kind == "depart":
            unit = self.units[action[1]]
            if unit in self.present():
                self.harness.remove_relation_unit(self.rel_id, unit)
                hooks += 1
        elif kind == "leader":
            with self.harness.hooks_disabled():
                self.harness.set_leader(action[1])
        else:  # pragma: no cover - strategy bug
            raise AssertionError(action)
        if not hooks:
            # Nothing Juju would deliver a hook for (the leader's own app bag, leadership
            # moved with hooks disabled): the relation-changed that would have delivered
            # reset()'s data is the next hook that sees it. (update-status no longer
            # reconciles a unit whose last hook left it active: it would not.)
            relation = self.relation()
            self.harness.charm.on[self.endpoint].relation_changed.emit(relation, relation.app)
            hooks = 1
        return hooks


def actions(n_units: int, unit_bag: st.SearchStrategy[Bag],
            app_bag: st.SearchStrategy[Bag] | None = None,
            leader: bool = False) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Mostly one action (one hook) per example, sometimes a short sequence."""
    index = st.sampled_from([0, 0, 0, *range(1, n_units)])
    unit_action = st.tuples(st.just("unit"), index, unit_bag)
    choices = [unit_action, unit_action, unit_action, st.tuples(st.just("depart"), index)]
    if app_bag is not None:
        choices.append(st.tuples(st.just("app"), app_bag))
    if leader:
        choices.append(st.tuples(st.just("leader"), st.booleans()))
    action = st.one_of(*choices)
    single = action.map(lambda step: [step])
    return st.one_of(single, single, st.lists(action, min_size=2, max_size=4))


# ---- the invariants after every hook -------------------------------------------------------
RESTART_FILES = ("etc/glance/glance-api.conf", "etc/glance/db-client.ca",
                 "etc/glance/glance-swift.conf",
                 "etc/glance/policy.yaml")  # glance keeps a removed rule until a restart
WATCHED = (*RESTART_FILES, "etc/ceph/ceph.conf", "etc/ceph/ceph.client.glance.keyring",
           "var/lib/charm/glance/restart-pending")


def snapshot(root: Path) -> dict[str, tuple[bytes, int] | None]:
    found: dict[str, tuple[bytes, int] | None] = {}
    for rel in WATCHED:
        path = root / rel
        try:
            found[rel] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        except FileNotFoundError:
            found[rel] = None
    return found


Oracle = Callable[["World", dict[str, dict[str, str]]], None]


def check_hook(world: World, before: dict[str, tuple[bytes, int] | None], restarts: int,
               oracle: Oracle | None, hooks: int = 1) -> str:
    gh = world.gh
    status = gh.status()
    kind = classify(status)
    after = snapshot(gh.root)
    if stopped_before_apply(kind, status.message):
        assert after == before, f"files changed although the hook stopped early: {status}"
    done = gh.services.count("restart") - restarts
    assert done <= hooks, f"{done} restarts in {hooks} hook(s)"
    if done and hooks == 1:  # (over several hooks a file may change and change back)
        changed = [rel for rel in RESTART_FILES if after[rel] != before[rel]]
        assert changed or before["var/lib/charm/glance/restart-pending"], (
            "restart without a changed file"
        )
    if kind == "ready":
        assert after["var/lib/charm/glance/restart-pending"] is None, "restart still owed"
        assert gh.services.is_running("glance-api")
    conf = after["etc/glance/glance-api.conf"]
    if conf is not None:
        assert conf[1] == 0o640
        parsed = read_ini(gh.conf_path)
        enabled = parsed["DEFAULT"]["enabled_backends"]
        keyring = after["etc/ceph/ceph.client.glance.keyring"]
        assert (keyring is not None) == ("ceph:rbd" in enabled), "keyring vs enabled_backends"
        swift = after["etc/glance/glance-swift.conf"]
        assert (swift is not None) == ("swift:swift" in enabled), "swift conf vs backends"
        if oracle is not None and not stopped_before_apply(kind, status.message) and (
            kind != "install"
        ):
            oracle(world, parsed)
    return kind


def play(world: World, steps: list[tuple[Any, ...]], oracle: Oracle | None,
         valid_expected: Callable[[list[tuple[Any, ...]]], bool] | None = None) -> None:
    """Reset to the good state, then run the actions and check every hook."""
    STATS[(world.endpoint, "examples")] += 1
    world.reset()
    kinds = []
    expanded = []
    present = set(world.present())
    for action in steps:  # a new unit: relation-joined (empty bag), then relation-changed
        if action[0] == "unit" and world.units[action[1]] not in present:
            expanded.append(("join", action[1]))
        if action[0] in ("unit", "join"):
            present.add(world.units[action[1]])
        elif action[0] == "depart":
            present.discard(world.units[action[1]])
        expanded.append(action)
    for action in expanded:
        before = snapshot(world.gh.root)
        restarts = world.gh.services.count("restart")
        bad = world.bad_inputs
        hooks = world.apply(action)
        STATS[(world.endpoint, "hooks")] += hooks
        kinds.append(check_hook(world, before, restarts, oracle, hooks))
        STATS[(world.endpoint, "bad inputs")] += world.bad_inputs - bad
        STATS[(world.endpoint, f"status {kinds[-1]}")] += 1
    world.bad_inputs = 0
    if valid_expected is not None and valid_expected(steps):
        assert kinds[-1] == "ready", f"valid data did not make the unit ready: {steps!r}"


def known_bug(name: str) -> bool:
    if name in KNOWN_BUGS:
        STATS[("known-bug hits", name)] += 1
        return True
    return False


# ---- fixtures -----------------------------------------------------------------------------
def _shared_environments() -> Callable[..., jinja2.Environment]:
    """jinja2.Environment, but one instance per distinct set of arguments.

    rendering caches its own Environment per process (`rendering._environment`), but any
    other code that builds one (a test's own, a cleared cache) would compile every
    template again, which is most of a hook's time here. Handing back the same environment
    keeps the compiled templates; the filters it then sets are the same functions each time.
    """
    real = jinja2.Environment
    made: dict[str, jinja2.Environment] = {}

    def describe(value: Any) -> str:
        if isinstance(value, jinja2.FileSystemLoader):
            return f"FileSystemLoader{value.searchpath!r}"
        return repr(value)

    def environment(**kwargs: Any) -> jinja2.Environment:
        key = repr(sorted((name, describe(value)) for name, value in kwargs.items()))
        if key not in made:
            made[key] = real(**kwargs)
        return made[key]

    return environment


@pytest.fixture
def fast(gh: GlanceHarness, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlanceHarness]:
    """The harness, with templates compiled once, fsync skipped, files on tmpfs.

    The charm's output is the same; only the time it takes changes.
    """
    import shutil
    import tempfile

    monkeypatch.setattr(jinja2, "Environment", _shared_environments())
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    from glance_charm.workload import haproxy
    if hasattr(haproxy, "HaproxyWorkload") and hasattr(haproxy.HaproxyWorkload, "check"):
        # `haproxy -c` is a process per changed haproxy.cfg; test_haproxy.py runs the real
        # one. Here every candidate is accepted (what haproxy does with a sane config).
        monkeypatch.setattr(haproxy.HaproxyWorkload, "check", lambda self, content: None)
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield gh
        return
    root = Path(tempfile.mkdtemp(prefix="glance-fuzz-", dir=shm))
    gh.root = root
    gh.workload.paths.root = root
    try:
        yield gh
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "fuzz counts (endpoint, what: n):"]
    lines += [f"  {ep:>22} {what:>22}: {n}" for (ep, what), n in sorted(STATS.items())]
    text = "\n".join(lines)
    if reporter is not None:
        reporter.write_line(text)
    out = os.environ.get("GLANCE_FUZZ_COUNTS")
    if out:
        Path(out).write_text(text + "\n")


def examples(request: pytest.FixtureRequest, slow: bool) -> settings:
    """Hypothesis settings for one endpoint's run: the profile's count, or the slow one."""
    if slow and "slow" not in (request.config.getoption("markexpr") or "") and not (
        os.environ.get("GLANCE_FUZZ_SLOW")
    ):
        pytest.skip("20,000-example run: select it with -m slow (or GLANCE_FUZZ_SLOW=1)")
    profile = os.environ.get(PROFILE_ENV) or "ci"
    if profile not in FUZZ_PROFILES:
        pytest.fail(f"{PROFILE_ENV}={profile!r}: one of {', '.join(FUZZ_PROFILES)}")
    count = SLOW_EXAMPLES if slow else FUZZ_PROFILES[profile]
    count = int(os.environ.get("GLANCE_FUZZ_EXAMPLES", count))  # for a quick local look
    return settings(
        max_examples=count, deadline=None,
        database=None, derandomize=False, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example],
    )


def relate(gh: GlanceHarness, *names: str) -> None:
    for fixture in names:
        gh.add_fixture(fixture)


def unit_bag(fixture: str, index: int = 0) -> dict[str, str]:
    data = load(fixture)
    return dict(sorted(data["remote_units_data"].items())[index][1])


# ---- shared-db ----------------------------------------------------------------------------
def allowed_units_values() -> st.SearchStrategy[str]:
    values = st.sampled_from(["glance/0", "glance/0 glance/1", '["glance/0", "glance/1"]',
                              " glance/0 ", "glance/1 glance/0"])
    return values


SHARED_DB_VALID = st.fixed_dictionaries(
    {"db_host": host, "password": password, "allowed_units": allowed_units_values()},
    optional={"db_port": port, "wait_timeout": st.integers(1, 10**6).map(str),
              "private-address": ipv4},
)


def _shared_db_junk() -> dict[str, st.SearchStrategy[str]]:
    allowed = junk_json if "json-recursion" not in KNOWN_BUGS else junk_json.filter(
        lambda raw: raw != DEEP_JSON)
    return {
        "db_host": junk_text | host, "password": junk_text, "glance_password": junk_text,
        "allowed_units": allowed, "db_port": junk_text | port,
        "ssl_ca": (junk_text if "ssl-ca-ascii" not in KNOWN_BUGS
                   else junk_text.filter(lambda raw: raw.isascii()))
        | st.just(base64.b64encode(b"-----BEGIN CERTIFICATE-----\nx\n"
                                   b"-----END CERTIFICATE-----\n").decode()),
        "wait_timeout": junk_text,
    }


def bags_in_order(world: World) -> list[dict[str, str]]:
    found = [world.bag(unit) for unit in world.present()]
    return [*found, world.bag(world.remote_app)]


_HOST_PORT = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)(?::\d{1,5})?")


def rendered_hosts_ok(netloc: str) -> bool:
    """Every `user:pw@host:port` of a URL's netloc names a plain host (IP or DNS name)."""
    return all(_HOST_PORT.fullmatch(part.rpartition("@")[2]) for part in netloc.split(","))


def check_db_url(parsed: dict[str, dict[str, str]], hosts: set[str], passwords: set[str],
                 users: set[str], ports: set[int | None], databases: set[str]) -> None:
    """The [database] connection, read as SQLAlchemy does, holds values the provider sent."""
    raw = oslo_value(parsed["database"]["connection"])
    netloc = raw.partition("://")[2].partition("/")[0]
    name = raw.partition("://")[2].partition("/")[2].partition("?")[0]
    ambiguous = any(ambiguous_host(h) for h in hosts)
    if not rendered_hosts_ok(netloc) or unquote(name) != name or ambiguous:
        if known_bug("db-host"):
            return
    url = parse_db_url(raw)
    assert url.host in hosts, (url, hosts)
    assert url.port in ports, (url, ports)
    assert url.database in databases, (url, databases)
    assert url.user in users, url
    assert url.password in passwords, "password in the URL is not one the provider sent"


def shared_db_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    hosts: set[str] = set()
    passwords: set[str | None] = set()
    ports: set[int | None] = set()
    for bag in bags_in_order(world):
        host = clean(bag.get("db_host"))
        if host:
            hosts.add(host)
            passwords |= {clean(bag.get("password")), clean(bag.get("glance_password"))}
            value = as_int(clean(bag.get("db_port")))
            ports.add(None if value in (None, 3306) else value)
    sent = {password for password in passwords if password is not None}
    check_db_url(parsed, hosts, sent, {"glance"}, ports, {"glance"})


def single_valid_unit0(steps: list[tuple[Any, ...]]) -> bool:
    return len(steps) == 1 and steps[0][0] == "unit" and steps[0][1] == 0 and not steps[0][2].bad


def run_shared_db(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "identity-service_keystone")
    world = World.create(gh, "shared-db", "mysql-router", 3,
                         {"mysql-router/0": unit_bag("shared-db_mysql-router")})
    unit = bags(SHARED_DB_VALID, _shared_db_junk())

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, shared_db_oracle, single_valid_unit0)

    prop()


# ---- database (mysql_client) -------------------------------------------------------------
def _endpoints(draw_host: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    entry = st.tuples(draw_host, port).map(
        lambda hp: f"[{hp[0]}]:{hp[1]}" if ":" in hp[0] else f"{hp[0]}:{hp[1]}")
    return st.lists(entry, min_size=1, max_size=3).map(",".join)


MYSQL_CLIENT_VALID = st.fixed_dictionaries(
    {"endpoints": _endpoints(host), "username": name, "password": password, "database": name},
    optional={"read-only-endpoints": _endpoints(host), "version": junk_text},
)


def mysql_client_oracle(secret: dict[str, str]) -> Oracle:
    def oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
        bag = world.bag(world.remote_app)
        first = (clean(bag.get("endpoints")) or "").split(",")[0].strip()
        if first.startswith("[") and "]" in first:  # [v6] or [v6]:port
            inside, _, after = first[1:].partition("]")
            hostpart, sep, portpart = inside, after[:1], after[1:]
        else:
            hostpart, sep, portpart = first.rpartition(":")
        hosts = {hostpart.strip("[]") if sep or first.startswith("[") else first}
        ports = {int(portpart) if sep and portpart.isdigit() and int(portpart) != 3306 else None}
        users = {clean(bag.get("username")), secret["username"]} - {None}
        passwords = {clean(bag.get("password")), secret["password"]} - {None}
        databases = {clean(bag.get("database")) or "glance"}
        check_db_url(parsed, hosts, passwords, users, ports, databases)  # type: ignore[arg-type]
    return oracle


def run_database(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "identity-service_keystone")
    fixture = load("database_mysql_client")
    world = World.create(gh, "database", "mysql", 3,
                         {"mysql/0": fixture["remote_units_data"]["mysql/0"]},
                         fixture["remote_app_data"])
    secret = {"username": "relation-7_secretuser", "password": "s3cr3t-from-the-secret"}
    secret_id = gh.harness.add_model_secret("mysql", secret)
    gh.harness.grant_secret(secret_id, "glance")
    junk = {
        "endpoints": junk_text | _endpoints(host) | _endpoints(junk_text),
        "username": junk_text, "password": junk_text, "database": junk_text | name,
        "secret-user": junk_text | st.just(secret_id) | st.just("secret://nope/abc"),
        "read-only-endpoints": junk_text, "version": junk_text,
    }
    app = bags(MYSQL_CLIENT_VALID, junk)
    unit = bags(st.fixed_dictionaries({"private-address": ipv4}), {"private-address": junk_text})

    @cfg
    @given(actions(3, unit, app_bag=app))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, mysql_client_oracle(secret),
             lambda s: len(s) == 1 and s[0][0] == "app" and not s[0][1].bad)

    prop()


# ---- db (legacy mysql) --------------------------------------------------------------------
LEGACY_VALID = st.fixed_dictionaries(
    {"database": name, "host": host, "user": name, "password": password},
    optional={"port": port, "root_password": password, "slave": st.just("False")},
)


def legacy_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    hosts, passwords, users, ports, databases = set(), set(), set(), set(), set()
    for bag in bags_in_order(world):
        values = [clean(bag.get(k)) for k in ("database", "host", "user", "password")]
        if all(values):
            databases.add(values[0])
            hosts.add(values[1])
            users.add(values[2])
            passwords.add(values[3])
            value = as_int(clean(bag.get("port")))
            ports.add(None if value in (None, 3306) else value)
    check_db_url(parsed, hosts, passwords, users, ports, databases)  # type: ignore[arg-type]


def run_db(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "identity-service_keystone")
    world = World.create(gh, "db", "mysql", 3, {"mysql/0": unit_bag("mysql-legacy_charmed-mysql")})
    junk = {"database": junk_text | name, "host": junk_text | host, "user": junk_text,
            "password": junk_text, "port": junk_text | port, "root_password": junk_text,
            "slave": junk_text}
    unit = bags(LEGACY_VALID, junk)

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, legacy_oracle, single_valid_unit0)

    prop()


# ---- identity-service -----------------------------------------------------------------------
_IDS = [f"{_RNG.getrandbits(128):032x}" for _ in range(20)]
KEYSTONE_VALID = st.fixed_dictionaries({
    "auth_host": host, "auth_port": port, "auth_protocol": st.sampled_from(["http", "https"]),
    "service_host": host, "service_port": port,
    "service_protocol": st.sampled_from(["http", "https"]),
    "service_tenant": name, "service_username": name, "service_password": password,
    "service_domain": name, "service_tenant_id": st.sampled_from(_IDS),
    "service_domain_id": st.sampled_from(_IDS), "api_version": st.just("3"),
}, optional={"internal_host": host, "internal_port": port, "admin_role": st.just("Admin")})
KEYSTONE_KEYS = (
    "auth_host", "auth_port", "auth_protocol", "service_host", "service_port",
    "service_protocol", "service_tenant", "service_username", "service_password",
    "service_domain", "service_tenant_id", "service_domain_id", "api_version",
    "internal_host", "internal_port", "admin_role",
)
K8S_KEYS = ("service-host", "service-port", "service-protocol", "service-project-name",
            "service-domain-name", "service-credentials", "internal-host", "internal-port",
            "internal-protocol", "admin-host", "admin-port", "admin-protocol", "api-version",
            "service-domain-id")


def identity_oracle(secret: dict[str, str]) -> Oracle:
    def oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
        sent: dict[str, set[str]] = collections.defaultdict(set)
        for bag in bags_in_order(world):
            for key, value in bag.items():
                if clean(value):
                    sent[key.replace("-", "_")].add(clean(value))  # type: ignore[arg-type]
        sent["service_password"].add(secret["password"])
        sent["service_username"].add(secret["username"])
        sent["service_tenant"] |= sent["service_project_name"]
        auth = parsed["keystone_authtoken"]
        for key, kinds in (("auth_url", ("auth", "internal", "admin", "service")),
                           ("www_authenticate_uri", ("service",))):
            url = oslo_value(auth[key])
            hosts = {h for kind in kinds for h in sent[f"{kind}_host"]}
            parts = urlsplit(url)
            good_host = parts.hostname is not None and parts.hostname in {
                h.lower().strip("[]") for h in hosts}
            try:
                good = good_host and parts.path == "/v3" and not parts.query and (
                    str(parts.port) in {p for kind in kinds for p in sent[f"{kind}_port"]})
            except ValueError:
                good = False
            ports = {p for kind in kinds for p in sent[f"{kind}_port"]}
            bad_sent = any(ambiguous_host(h) or any(c in h for c in " /@?#") for h in hosts) or (
                any(not 0 < (as_int(p) or 0) < 65536 for p in ports))
            assert good or (bad_sent and known_bug("identity-host")), (key, url)
        for key, source in (("password", "service_password"), ("username", "service_username"),
                            ("project_name", "service_tenant")):
            value = oslo_value(auth[key])
            assert value in sent[source] or (
                any(quote_wrapped(v) for v in sent[source]) and known_bug("oslo-quotes")
            ), key
    return oracle


def run_identity(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router")
    world = World.create(gh, "identity-service", "keystone", 3,
                         {"keystone/0": unit_bag("identity-service_keystone")})
    secret = {"username": "glance-k8s", "password": "k8s-service-password"}
    secret_id = gh.harness.add_model_secret("keystone", secret)
    gh.harness.grant_secret(secret_id, "glance")
    junk = dict.fromkeys(KEYSTONE_KEYS, junk_text)
    junk.update({"auth_port": junk_text | port, "service_port": junk_text | port,
                 "auth_host": junk_text | host, "service_host": junk_text | host,
                 "api_version": st.sampled_from(["2.0", "3", "v3", "abc", "__null__"])})
    unit = bags(KEYSTONE_VALID, junk)
    k8s_valid = st.fixed_dictionaries({
        "service-host": host, "service-port": port, "service-protocol": st.just("https"),
        "service-project-name": name, "service-domain-name": name,
        "service-credentials": st.just(secret_id), "api-version": st.just("v3"),
    })
    k8s_junk = dict.fromkeys(K8S_KEYS, junk_text)
    k8s_junk["service-credentials"] = junk_text | st.just(secret_id)
    app = bags(k8s_valid, k8s_junk)

    @cfg
    @given(actions(3, unit, app_bag=app))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, identity_oracle(secret), single_valid_unit0)

    prop()


# ---- image-service (provided) --------------------------------------------------------------
def image_service_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    ours = world.bag(UNIT)
    assert ours == {"glance-api-server": f"http://{ADDRESS}:9292", "glance-api-ready": "yes"}


def run_image_service(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    world = World.create(gh, "image-service", "nova-cloud-controller", 3,
                         {"nova-cloud-controller/0": unit_bag(
                             "image-service_nova-cloud-controller")})
    junk = dict.fromkeys(("private-address", "glance-api-server", "glance-api-ready",
                          "api_servers", "image-service"), junk_text)
    unit = bags(st.fixed_dictionaries({"private-address": ipv4}), junk)

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, image_service_oracle, lambda s: True)

    prop()


# ---- cluster (peers) ------------------------------------------------------------------------
DB_RECORD = {"database": "shared-db:127.0.0.1/glance", "version": GLANCE_VERSION}


def cluster_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    record = world.bag("glance").get("db-initialised")
    if world.harness.model.unit.is_leader():
        assert record is not None and json.loads(record) == DB_RECORD


VIP = "10.5.100.1"


def run_cluster(gh: GlanceHarness, cfg: settings) -> None:
    gh.harness.update_config({"vip": VIP})  # several units: behind a VIP, on a shared store
    relate(gh, "shared-db_mysql-router", "identity-service_keystone", "object-store_swift-proxy",
           "ha_hacluster")
    good_record = json.dumps(DB_RECORD, sort_keys=True)
    world = World.create(gh, "cluster", "glance", 3,
                         {"glance/1": {"private-address": "10.5.0.101"}},
                         {"db-initialised": good_record})
    peer_junk = {"private-address": junk_text | host, "ingress-address": junk_text}
    unit = bags(st.fixed_dictionaries({"private-address": host}), peer_junk)
    record = st.fixed_dictionaries({"database": st.just(DB_RECORD["database"]),
                                    "version": st.just(GLANCE_VERSION)}).map(json.dumps)
    app = bags(st.fixed_dictionaries({"db-initialised": record}),
               {"db-initialised": junk_json.filter(lambda raw: raw != DEEP_JSON)
                | st.just('{"database": "db:x/y", "version": "1"}')})
    world.units = ["glance/1", "glance/2", "glance/3"]

    @cfg
    @given(actions(3, unit, app_bag=app, leader=True))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, cluster_oracle)
        # A non-leader runs only once the leader's record names this database.
        if classify(gh.status()) == "db-init":
            assert not gh.harness.model.unit.is_leader()

    prop()


# ---- ceph -----------------------------------------------------------------------------------
CEPH_KEY = st.sampled_from([base64.b64encode(b"\x01\x00" + _RNG.randbytes(26)).decode()
                            for _ in range(30)])


def normal_address(raw: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return raw


def _mon_address() -> st.SearchStrategy[str]:
    return st.one_of(ipv4, ipv6, hostname)


def ceph_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    enabled = parsed["DEFAULT"]["enabled_backends"]
    if "ceph:rbd" not in enabled:
        return
    root = world.gh.root
    bags_now = [world.bag(unit) for unit in world.present()]
    keys = {clean(bag.get("key")) for bag in bags_now}
    keyring = (root / "etc/ceph/ceph.client.glance.keyring").read_text()
    match = re.fullmatch(r"\[client\.glance\]\n\tkey = (\S+)\n", keyring)
    assert match and match[1] in keys, "keyring holds a key no monitor sent"
    conf = read_ini(root / "etc/ceph/ceph.conf")["global"]
    assert conf["auth_supported"] in {clean(bag.get("auth")) for bag in bags_now}
    sent = {normal_address(a) for bag in bags_now
            for a in (clean(bag.get("ceph-public-address")) or "").split()}
    for mon in conf["mon host"].split():
        assert normal_address(mon.strip("[]")) in sent, mon
    assert parsed["ceph"]["rbd_store_pool"] == "glance"


def run_ceph(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    rel = gh.relate_ceph(answer=True, units=1)
    request_id = gh.sent_broker_request(rel)["request-id"]
    base = gh.harness.get_relation_data(rel, "ceph-mon/0")
    gh.harness.remove_relation(rel)
    good_rsp = json.dumps({"exit-code": 0, "request-id": request_id})
    responses = st.one_of(
        st.just(good_rsp),
        st.builds(lambda code, err: json.dumps({"exit-code": code, "request-id": request_id,
                                                "stderr": err}),
                  st.integers(-5, 300), junk_text),
        st.builds(lambda rid: json.dumps({"exit-code": 0, "request-id": rid}), junk_text),
        junk_json,
    )
    valid = st.fixed_dictionaries(
        {"auth": st.just("cephx"), "key": CEPH_KEY,
         "ceph-public-address": _mon_address(), "broker-rsp-glance-0": st.just(good_rsp)},
        optional={"rbd-features": st.integers(0, 2**31).map(str),
                  "broker_rsp": st.just(json.dumps({"exit-code": 0}))},
    )
    junk = {
        "auth": junk_text, "key": junk_text | CEPH_KEY,
        "ceph-public-address": junk_text | st.lists(_mon_address() | junk_text, max_size=4).map(
            " ".join),
        "rbd-features": junk_text, "broker-rsp-glance-0": responses, "broker_rsp": responses,
    }
    world = World.create(gh, "ceph", "ceph-mon", 3, {"ceph-mon/0": dict(base)})
    unit = bags(valid, junk)

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, ceph_oracle, single_valid_unit0)

    prop()


# ---- object-store ---------------------------------------------------------------------------
def swift_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    enabled = parsed["DEFAULT"]["enabled_backends"]
    assert ("swift:swift" in enabled) == bool(world.present())
    if world.present():
        assert parsed["glance_store"]["default_backend"] == "swift"


def run_object_store(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    world = World.create(gh, "object-store", "swift-proxy", 3,
                         {"swift-proxy/0": unit_bag("object-store_swift-proxy")})
    junk = {"swift-url": junk_text, "private-address": junk_text, "auth_host": junk_text}
    unit = bags(st.fixed_dictionaries({"swift-url": host.map(lambda h: f"http://{h}:8080")}),
                junk)

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, swift_oracle)

    prop()


# ---- storage-backend (glance-backend subordinate) -----------------------------------------
FOREIGN_SECTIONS = ("vendor_store", "x.y")  # sections glance-api.conf has only from the sub
_sub_key = st.sampled_from(["vendor_opt", "k", "default_backend", "a.b",
                            "filesystem_store_datadir"])
_sub_pair = st.one_of(
    st.tuples(_sub_key, st.sampled_from(["1", "a,b", "http://h:1/$x", "", "é"])).map(list),
    st.lists(st.one_of(junk_text, st.integers(), st.none()), min_size=0, max_size=3),
)
_sub_sections = st.dictionaries(
    st.sampled_from([*FOREIGN_SECTIONS, "glance_store", "DEFAULT", "local", "database"])
    | junk_text,
    st.lists(_sub_pair, max_size=3) | junk_text, max_size=3,
)


def _subordinate_configuration(sections: object) -> str:
    return json.dumps({"glance-api": {"/etc/glance/glance-api.conf": {"sections": sections}}})


def _sub_expected(raw: str | None, names: tuple[str, ...] = FOREIGN_SECTIONS,
                  ) -> dict[str, dict[str, str]]:
    """What a foreign section must hold: the last one-line value of each valid key."""
    try:
        sections = json.loads(raw or "")["glance-api"]["/etc/glance/glance-api.conf"][
            "sections"]
    except (ValueError, KeyError, TypeError):
        return {}
    expected: dict[str, dict[str, str]] = {}
    if not isinstance(sections, dict):
        return {}
    for section in names:
        pairs = sections.get(section)
        for pair in pairs if isinstance(pairs, list) else []:
            if (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}", pair[0])
                    and isinstance(pair[1], str | int | float | bool)
                    and not any(ord(c) < 32 or ord(c) == 127 for c in str(pair[1]))):
                expected.setdefault(section, {})[pair[0]] = str(pair[1])
    return expected


def backend_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    bags = [world.bag(unit) for unit in world.present()]
    raw = bags[0].get("subordinate_configuration") if bags else None
    for section, pairs in _sub_expected(raw).items():
        assert parsed.get(section) == pairs, (section, parsed.get(section), pairs)
    flag = (bags[0].get("cinder-backend") or "") if bags else ""
    cinder = flag.strip().lower() in ("true", "yes", "1")
    assert ("cinder:cinder" in parsed["DEFAULT"]["enabled_backends"]) == cinder
    sub_default = _sub_value(raw, "glance_store", "default_backend")
    assert parsed["glance_store"]["default_backend"] == (
        sub_default if sub_default is not None else ("cinder" if cinder else "local"))


def _sub_value(raw: str | None, section: str, key: str) -> str | None:
    """The subordinate's (last valid) value of one key in a section the charm also writes."""
    return _sub_expected(raw, (section,)).get(section, {}).get(key)


def run_storage_backend(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    good = {"cinder-backend": "false", "subordinate_configuration":
            _subordinate_configuration({"vendor_store": [["vendor_opt", "1"]]})}
    world = World.create(gh, "storage-backend", "glance-backend", 1,
                         {"glance-backend/0": good})
    unit = bags(
        st.fixed_dictionaries({
            "subordinate_configuration": _sub_sections.map(_subordinate_configuration),
            "cinder-backend": st.sampled_from(["true", "false", "True"]),
        }),
        {"subordinate_configuration": junk_json, "cinder-backend": junk_text},
    )

    @cfg
    @given(actions(1, unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, backend_oracle)

    prop()


# ---- ha (hacluster) -------------------------------------------------------------------------
HA_JUNK = {
    "clustered": junk_text | st.sampled_from(["yes", "no", "true", "False", "1", "on", "Y"]),
    **dict.fromkeys(ha_relation.OWNED_KEYS, junk_json),
}


def run_ha(gh: GlanceHarness, cfg: settings) -> None:
    gh.harness.update_config({"vip": VIP})
    relate(gh, "shared-db_mysql-router", "identity-service_keystone", "object-store_swift-proxy")
    world = World.create(gh, "ha", "glance-hacluster", 3,
                         {"glance-hacluster/0": unit_bag("ha_hacluster")})
    unit = bags(st.fixed_dictionaries({"clustered": st.just("yes")}), HA_JUNK)

    @cfg
    @given(actions(3, unit, app_bag=unit))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, None)

    prop()


# ---- amqp ---------------------------------------------------------------------------------
def parse_transport_url(url: str) -> tuple[list[tuple[str, str, str, int]], str]:
    """(user, password, host, port) per broker and the vhost, as oslo.messaging reads them."""
    scheme, sep, rest = url.partition("://")
    assert scheme == "rabbit" and sep, url
    netloc, _, vhost = rest.partition("/")
    brokers = []
    for part in netloc.split(","):
        creds, _, hostport = part.partition("@")
        user, _, password = creds.partition(":")
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]:")
        else:
            host, _, port = hostport.partition(":")
        assert port.isdigit(), f"oslo.messaging would fail on port {port!r} in {url!r}"
        brokers.append((unquote(user), unquote(password), host, int(port)))
    return brokers, unquote(vhost)


def amqp_oracle(world: World, parsed: dict[str, dict[str, str]]) -> None:
    url = oslo_value(parsed["DEFAULT"]["transport_url"])
    assert oslo_value(parsed["oslo_messaging_notifications"]["transport_url"]) == url
    hosts: set[str | None] = set()
    passwords: set[str | None] = set()
    ports: set[int | None] = {5672}
    for bag in bags_in_order(world):
        hosts |= {clean(bag.get(k)) for k in ("private-address", "hostname", "vip")}
        passwords.add(clean(bag.get("password")))
        ports.add(as_int(clean(bag.get("ssl_port"))))
    netloc = url.partition("://")[2].partition("/")[0]
    if not rendered_hosts_ok(netloc) or any(h and ambiguous_host(h) for h in hosts):
        if known_bug("amqp-host"):
            return
    brokers, vhost = parse_transport_url(url)
    assert vhost == "openstack"
    for user, password, host, port in brokers:
        assert user == "glance"
        assert password in passwords, "password in transport_url is not one rabbit sent"
        assert host in hosts, (host, hosts)
        assert port in ports, (port, ports)


def run_amqp(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    world = World.create(gh, "amqp", "rabbitmq-server", 3,
                         {"rabbitmq-server/0": unit_bag("amqp_rabbitmq-server")})
    junk = dict.fromkeys(("hostname", "private-address", "password", "ssl_port", "clustered",
                          "vip", "ha_queues"), junk_text)
    junk.update({"hostname": junk_text | host, "private-address": junk_text | host,
                 "ssl_port": junk_text | port, "vip": junk_text | host,
                 "clustered": junk_text | st.just("true"),
                 "ssl_ca": junk_text if "ssl-ca-ascii" not in KNOWN_BUGS
                 else junk_text.filter(lambda raw: raw.isascii())})
    valid = st.fixed_dictionaries({"hostname": host, "private-address": host,
                                   "password": password}, optional={"ssl_port": port})
    unit = bags(valid, junk)
    app = bags(st.fixed_dictionaries({"hostname": host, "password": password}), junk)

    @cfg
    @given(actions(3, unit, app_bag=app))
    def prop(steps: list[tuple[Any, ...]]) -> None:
        play(world, steps, amqp_oracle, single_valid_unit0)

    prop()


# ---- nrpe-external-master -------------------------------------------------------------------
def run_nrpe(gh: GlanceHarness, cfg: settings) -> None:
    """The nrpe charm sends nagios_hostname, nagios_host_context (charm-nrpe nrpe_helpers.py).

    Whatever it sends: a documented status; a bad name blocks and leaves the checks written
    for the last good name in place; a good name reaches every nagios service export.
    """
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    (gh.root / "etc/nagios/nrpe.d").mkdir(parents=True, exist_ok=True)
    (gh.root / "var/lib/nagios/export").mkdir(parents=True, exist_ok=True)
    harness = gh.harness
    rel = harness.add_relation("nrpe-external-master", "nrpe")
    harness.add_relation_unit(rel, "nrpe/0")
    assert classify(gh.status()) == "ready"
    nagios_name = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,20}\Z")
    keys = ("nagios_hostname", "nagios_host_context")
    sent = st.fixed_dictionaries({}, optional=dict.fromkeys(keys, junk_text | nagios_name))

    def exports() -> dict[str, str]:
        return {path.name: path.read_text()
                for path in sorted((gh.root / "var/lib/nagios/export").glob("*"))}

    @cfg
    @given(sent)
    def prop(bag: dict[str, str]) -> None:
        STATS[("nrpe", "examples")] += 1
        before = exports()
        old = harness.get_relation_data(rel, "nrpe/0")
        harness.update_relation_data(rel, "nrpe/0", {**dict.fromkeys(old, ""), **bag})
        status = gh.status()
        kind = classify(status)
        STATS[("nrpe", f"status {kind}")] += 1
        used = {key: value for key in keys if (value := clean(bag.get(key)))}
        valid = all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,252}", value)
                    for value in used.values())
        if not valid:
            assert kind == "nrpe", (bag, status)
            assert exports() == before
            return
        assert kind == "ready", (bag, status)
        hostname = used.get("nagios_hostname", "juju-glance-0")
        assert exports(), "no nagios service exported"
        for text in exports().values():
            assert f"host_name                       {hostname}\n" in text

    prop()


# ---- config ---------------------------------------------------------------------------------
OPTIONS: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "config.yaml").read_text())["options"]
PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
GOOD_STRINGS: dict[str, st.SearchStrategy[str]] = {
    # Only the current origin: another valid one upgrades the packages (test_actions covers it).
    "openstack-origin": st.sampled_from(["distro", " distro "]),
    "region": st.from_regex(r"\A[A-Za-z0-9_.-]{1,20}\Z"),
    "database": name, "database-user": st.from_regex(r"\A[A-Za-z0-9_]{1,32}\Z"),
    "filesystem-store-datadir": st.from_regex(r"\A/srv/[a-z]{1,10}/?\Z"),
    "default-store": st.sampled_from(["local", "ceph", "swift"]),
    "disk-formats": st.sampled_from(["raw", "qcow2,raw", "iso, vmdk"]),
    "container-formats": st.sampled_from(["bare", "bare,ovf"]),
    "image-size-cap": st.sampled_from(["1TB", "512M", "1048576", "8EB", "1K"]),
    "pool-type": st.sampled_from(["replicated", "erasure-coded"]),
    "vip": st.lists(ipv4, max_size=2, unique=True).map(" ".join),
    "os-public-hostname": hostname, "os-internal-hostname": hostname,
    "os-admin-hostname": hostname,
    "os-public-network": st.just("10.5.0.0/16"), "ssl_ca": st.just(PEM),
}


def config_value(option: str) -> st.SearchStrategy[Any]:
    kind = OPTIONS[option]["type"]
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**40), 2**40) | st.integers(-2, 200)
    if kind == "float":
        return st.floats(-1e6, 1e6, allow_nan=False) | st.floats(0, 70)
    good = GOOD_STRINGS.get(option, st.nothing())
    return good | junk_text | st.sampled_from(["", " ", "abc", "-1", "none"])


config_changes = st.lists(st.sampled_from(sorted(OPTIONS)), min_size=1, max_size=4,
                          unique=True).flatmap(
    lambda names: st.fixed_dictionaries({n: config_value(n) for n in names}))


def run_config(gh: GlanceHarness, cfg: settings) -> None:
    relate(gh, "shared-db_mysql-router", "identity-service_keystone", "object-store_swift-proxy")
    gh.relate_ceph(answer=True, units=1)
    harness = gh.harness
    assert classify(gh.status()) == "ready"
    base = snapshot(gh.root)

    @cfg
    @given(config_changes)
    def prop(changes: dict[str, Any]) -> None:
        STATS[("config", "examples")] += 1
        STATS[("config", "options set")] += len(changes)
        before = snapshot(gh.root)
        restarts = gh.services.count("restart")
        harness.update_config(changes)
        status = gh.status()
        kind = classify(status)
        STATS[("config", f"status {kind}")] += 1
        if kind == "config":
            STATS[("config", "bad inputs")] += 1
            named = set(status.message.removeprefix("Invalid config: ").split(", "))
            touched = set(changes)
            if touched & {"ssl_cert", "ssl_key"}:  # a lone cert or key names both
                touched |= {"ssl_cert", "ssl_key"}
            assert named <= touched, (named, changes)
        if stopped_before_apply(kind, status.message):
            assert snapshot(gh.root) == before
            assert gh.services.count("restart") == restarts
        elif gh.conf_path.exists():
            parsed = read_ini(gh.conf_path)
            def option(name: str) -> str:
                raw = harness.model.config.get(name)
                blank = not isinstance(raw, str) or not raw.strip()  # blank means unset
                return str(OPTIONS[name]["default"] if blank else raw)

            region = option("region")
            assert oslo_value(parsed["keystone_authtoken"]["region_name"]) == region.strip()
            datadir = option("filesystem-store-datadir").rstrip("/") + "/"
            assert parsed["local"]["filesystem_store_datadir"] == datadir
        # Back to the base config: the base files, and a restart only if they had changed.
        restarts = gh.services.count("restart")
        changed = snapshot(gh.root) != base
        harness.update_config(unset=list(changes))
        assert classify(gh.status()) == "ready"
        assert snapshot(gh.root) == base
        assert gh.services.count("restart") - restarts == int(changed)

    prop()


def run_cos_agent(gh: GlanceHarness, cfg: settings) -> None:
    """grafana-agent sends only tracing `receivers` (cos_agent.py `CosAgentRequirerUnitData`).

    glance requests no tracing and reads none of it: whatever the agent's unit bag holds, the
    unit stays ready, haproxy keeps the exporter, and the provider data stays what it was.
    """
    relate(gh, "shared-db_mysql-router", "identity-service_keystone")
    harness = gh.harness
    rel = harness.add_relation("cos-agent", "grafana-agent")
    harness.add_relation_unit(rel, "grafana-agent/0")
    assert classify(gh.status()) == "ready"
    published = harness.get_relation_data(rel, harness.charm.unit.name)["config"]
    receivers = st.lists(st.fixed_dictionaries({
        "protocol": st.fixed_dictionaries({"name": junk_text, "type": junk_text}),
        "url": junk_text,
    })).map(json.dumps)
    sent = st.fixed_dictionaries({}, optional={"receivers": junk_text | receivers,
                                               "config": junk_text})

    @cfg
    @given(sent)
    def prop(bag: dict[str, str]) -> None:
        STATS[("cos-agent", "examples")] += 1
        old = harness.get_relation_data(rel, "grafana-agent/0")
        harness.update_relation_data(rel, "grafana-agent/0", {**dict.fromkeys(old, ""), **bag})
        kind = classify(gh.status())
        STATS[("cos-agent", f"status {kind}")] += 1
        assert kind == "ready", bag
        assert harness.get_relation_data(rel, harness.charm.unit.name)["config"] == published
        assert "frontend metrics" in gh.charm.haproxy.paths.config.read_text()

    prop()


# ---- the tests ------------------------------------------------------------------------------
def _adapter_exists(module: str) -> bool:
    return (ROOT / "src" / "glance_charm" / "relations" / f"{module}.py").exists()


RUNNERS: dict[str, Callable[[GlanceHarness, settings], None]] = {
    "shared-db": run_shared_db,
    "database": run_database,
    "db": run_db,
    "identity-service": run_identity,
    "image-service": run_image_service,
    "cluster": run_cluster,
    "ceph": run_ceph,
    "object-store": run_object_store,
    "ha": run_ha,
    "amqp": run_amqp,
    "nrpe-external-master": run_nrpe,
    "storage-backend": run_storage_backend,
    "cos-agent": run_cos_agent,
    "config": run_config,
}
ADAPTER = {"ceph": "ceph", "object-store": "object_store", "ha": "ha", "amqp": "amqp"}
ENDPOINTS = [
    pytest.param(name, marks=pytest.mark.skipif(
        name in ADAPTER and not _adapter_exists(ADAPTER[name]),
        reason=f"no src/glance_charm/relations/{ADAPTER.get(name)}.py adapter yet"))
    for name in RUNNERS
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_fuzz(fast: GlanceHarness, endpoint: str, request: pytest.FixtureRequest) -> None:
    RUNNERS[endpoint](fast, examples(request, slow=False))


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_fuzz_slow(fast: GlanceHarness, endpoint: str, request: pytest.FixtureRequest) -> None:
    RUNNERS[endpoint](fast, examples(request, slow=True))


def test_metadata_endpoints_are_all_fuzzed_or_listed() -> None:
    """A new endpoint in metadata.yaml must get a fuzzer here (or be listed as unread)."""
    meta = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    names = {n for section in ("provides", "requires", "peers") for n in meta.get(section, {})}
    unread = {"certificates", "cinder-volume-service"}  # cinder sends nothing
    assert names - unread == set(RUNNERS) - {"config"}


# ---- regression tests for the bugs found (strict xfail until src/ is fixed) ----------------
def test_deeply_nested_allowed_units_does_not_crash_the_hook(gh: GlanceHarness) -> None:
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_mysql-router", override={"allowed_units": DEEP_JSON})
    assert classify(gh.status()) in {"ready", "relations"}


def test_deeply_nested_db_sync_record_does_not_crash_a_non_leader(gh: GlanceHarness) -> None:
    gh.relate_core()
    peer = gh.harness.model.get_relation("cluster")
    assert peer is not None
    gh.harness.set_leader(False)
    gh.harness.update_relation_data(peer.id, "glance", {"db-initialised": DEEP_JSON})
    assert gh.status() == ops.WaitingStatus("Waiting for database initialisation by leader")


@pytest.mark.parametrize("how", ["key garbled", "all mons departed"])
def test_ceph_in_use_stays_configured_when_its_data_turns_unusable(gh: GlanceHarness,
                                                                   how: str) -> None:
    """The last good config stays: the classic charm skipped writing an incomplete ceph."""
    gh.relate_core()
    rel = gh.relate_ceph(answer=True)
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    before = snapshot(gh.root)
    for unit in ("ceph-mon/0", "ceph-mon/1", "ceph-mon/2"):
        if how == "key garbled":
            gh.harness.update_relation_data(rel, unit, {"key": "garbage!!"})
        else:
            if unit == "ceph-mon/2":  # a departed mon leaves `mon host` (still usable data)
                assert read_ini(gh.root / "etc/ceph/ceph.conf")["global"]["mon host"] == (
                    "10.5.0.53")
                before = snapshot(gh.root)
            gh.harness.remove_relation_unit(rel, unit)
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert snapshot(gh.root) == before
    assert gh.conf()["glance_store"]["default_backend"] == "ceph"


def test_swift_in_use_stays_configured_when_its_units_depart(gh: GlanceHarness) -> None:
    gh.relate_core()
    rel = gh.add_fixture("object-store_swift-proxy")
    assert gh.conf()["glance_store"]["default_backend"] == "swift"
    before = snapshot(gh.root)
    gh.harness.remove_relation_unit(rel, "swift-proxy/0")
    assert gh.status() == ops.WaitingStatus("Incomplete relations: storage-backend")
    assert snapshot(gh.root) == before


@pytest.mark.parametrize("override", [
    {"db_host": "db1:4000"}, {"db_host": "db1:4000", "db_port": "3307"}, {"db_host": "1:2"},
])
def test_database_host_with_a_colon_is_not_written(gh: GlanceHarness,
                                                  override: dict[str, str]) -> None:
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("shared-db_mysql-router", override=override)
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    assert not gh.conf_path.exists()


def test_database_name_that_sqlalchemy_would_not_unquote_is_not_written(
    gh: GlanceHarness,
) -> None:
    gh.add_fixture("identity-service_keystone")
    gh.add_fixture("mysql-legacy_charmed-mysql", override={"database": "my db"})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: database")
    assert not gh.conf_path.exists()


@pytest.mark.parametrize("bad", [
    {"auth_host": "a b"}, {"auth_host": "a/b@c"}, {"auth_host": "keystone:1"},
    {"auth_host": "[fd00::1"}, {"auth_port": "65536"}, {"service_port": "0"},
])
def test_keystone_host_garbage_is_not_written(gh: GlanceHarness, bad: dict[str, str]) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override=bad)
    assert gh.status() == ops.WaitingStatus("Incomplete relations: identity")
    assert not gh.conf_path.exists()


@pytest.mark.parametrize("secret", ["'quoted'", '"x"', '"'])
def test_quoted_keystone_password_survives_oslo_config(gh: GlanceHarness, secret: str) -> None:
    gh.add_fixture("shared-db_mysql-router")
    gh.add_fixture("identity-service_keystone", override={"service_password": secret})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert oslo_value(read_ini(gh.conf_path)["keystone_authtoken"]["password"]) == secret


@pytest.mark.parametrize("ssl_ca", ["ü", "Q0E=\u00e9", "😀"])
@pytest.mark.parametrize("fixture", ["shared-db_mysql-router", "amqp_rabbitmq-server"])
def test_non_ascii_ssl_ca_is_ignored_not_a_crash(gh: GlanceHarness, fixture: str,
                                                 ssl_ca: str) -> None:
    gh.relate_core() if fixture.startswith("amqp") else gh.add_fixture(
        "identity-service_keystone")
    gh.add_fixture(fixture, override={"ssl_ca": ssl_ca})
    assert gh.status() == ops.ActiveStatus("Unit is ready")
    assert not list(gh.root.rglob("*.ca"))


@pytest.mark.parametrize("bad_host", ["rabbit:5672", "[fd00::1", "1:2:3"])
def test_rabbit_host_garbage_is_not_written(gh: GlanceHarness, bad_host: str) -> None:
    gh.relate_core()
    gh.add_fixture("amqp_rabbitmq-server", units=1,
                   override={"private-address": bad_host, "hostname": bad_host})
    assert gh.status() == ops.WaitingStatus("Incomplete relations: messaging")
    assert "transport_url" not in gh.conf()["DEFAULT"]
