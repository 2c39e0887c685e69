"""Typed errors that the charm turns into unit status in one place."""

from __future__ import annotations


class GlanceCharmError(Exception):
    """Base of every error the charm maps to a status."""


class InvalidConfigError(GlanceCharmError):
    """One or more config options hold invalid values (-> Blocked)."""

    def __init__(self, options: list[str]) -> None:
        self.options = sorted(set(options))
        super().__init__(f"Invalid config: {', '.join(self.options)}")


class RelationNotReadyError(GlanceCharmError):
    """Required relations are missing (-> Blocked) or incomplete (-> Waiting)."""

    def __init__(self, missing: set[str], incomplete: set[str]) -> None:
        self.missing = set(missing)
        self.incomplete = set(incomplete)
        super().__init__(self.message)

    @property
    def blocked(self) -> bool:
        """Whether an operator must act (a relation is missing)."""
        return bool(self.missing)

    @property
    def message(self) -> str:
        """Status message in the classic charms' wording."""
        parts = []
        if self.missing:
            parts.append(f"Missing relations: {', '.join(sorted(self.missing))}")
        if self.incomplete:
            label = "incomplete" if self.missing else "Incomplete"
            parts.append(f"{label} relations: {', '.join(sorted(self.incomplete))}")
        return "; ".join(parts)


class BlockedError(GlanceCharmError):
    """A condition only the operator can fix (-> Blocked with this message)."""


class WaitingError(GlanceCharmError):
    """A condition that resolves by itself, e.g. a remote unit still working (-> Waiting)."""


class WorkloadError(GlanceCharmError):
    """The workload could not be installed, configured or started (-> Blocked, retried)."""
