# Entry points. `make local` runs the main job, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv-tox
TOX := $(VENV)/bin/tox
# The target base's Python (3.12, ubuntu@24.04) for the lint tier (charmlint needs >= 3.12):
# Debian 12 has none in apt; pyenv has one on these machines (its shim may not expose it).
PY312 ?= $(firstword $(wildcard /usr/bin/python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12))
export GLANCE_PY312 := $(PY312)

.PHONY: local local-down test test-epoxy lint unit fuzz functional integration pack packing docs py312

$(TOX):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet tox==4.67.15

local: $(TOX)  ## install + start a real Glance stack here and drive the charm through it
	$(TOX) -e local -- up

local-down: $(TOX)  ## stop everything `make local` started
	$(TOX) -e local -- down

# The tiers run side by side (the functional tier in its own sandboxes): the wall time is about
# the functional tier's; each tier's output is printed when it ends.
test: $(TOX) py312  ## lint + types + unit (with coverage) + functional + packing
	$(TOX) run-parallel -p all --parallel-no-spinner -e lint,unit,functional,packing

# The functional tier and make local's round trip on Debian 13 (glance 30, Epoxy), in a cached
# trixie root (debootstrap) entered in private namespaces; CI runs it after `make test`.
test-epoxy:  ## functional tier + make local's round trip on Epoxy (root; see tools/epoxy.py)
	$(PYTHON) tools/epoxy.py

lint: $(TOX) py312
	$(TOX) -e $@

unit fuzz functional integration: $(TOX)  ## fuzz: the release check's 2,000-example fuzz
	$(TOX) -e $@

py312:
	@test -n "$(PY312)" || { echo "error: no Python 3.12 found (looked for /usr/bin/python3.12 and ~/.pyenv/versions/3.12*); install one or run make PY312=/path/to/python3.12" >&2; exit 1; }

docs: $(TOX)  ## README config table
	$(TOX) -e $@

pack packing: $(TOX) py312  ## pack: build/glance_amd64.charm; packing: check it (Python 3.12)
	$(TOX) -e $@
