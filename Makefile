# Entry points. `make local` runs the main job, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv-tox
TOX := $(VENV)/bin/tox

.PHONY: local local-down test lint unit functional integration pack packing docs

$(TOX):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet tox==4.67.15

local: $(TOX)  ## install + start a real Glance stack here and drive the charm through it
	$(TOX) -e local -- up

local-down: $(TOX)  ## stop everything `make local` started
	$(TOX) -e local -- down

test: $(TOX)  ## lint + types + unit (with coverage) + functional + packing
	$(TOX) -e lint,unit,functional,packing

lint unit functional integration: $(TOX)
	$(TOX) -e $@

pack docs packing: $(TOX)  ## pack: build/glance_amd64.charm; docs: README table; packing: check it
	$(TOX) -e $@
