# onebox.deploy developer entry points. `make test` and `make demo` install
# what they need themselves (Debian packages, virtualenv, systemd test image).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

TOP      := $(CURDIR)
VENV     := $(TOP)/.venv
CACHE    := $(TOP)/.cache
COLL     := $(CACHE)/collections
PY       := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export CONTAINERS_CONF := $(CACHE)/containers.conf
export ANSIBLE_COLLECTIONS_PATH := $(COLL):$(VENV)/lib/python3.11/site-packages
export ANSIBLE_FORCE_COLOR := false
export ANSIBLE_NOCOLOR := true
export PY_COLORS := 0
export ONEBOX_TEST_IMAGE ?= localhost/onebox-systemd:bookworm
SCENARIOS ?= default traefik

.PHONY: help venv host collection lint unit molecule test demo bench-roll bench-traefik clean

help:
	@echo "make test   - lint, unit tests and every Molecule scenario"
	@echo "make demo   - three demo sites in a systemd container, restarted under load"

$(VENV)/.installed: requirements-dev.txt
	command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
	python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

host:
	bash tests/harness/prepare-host.sh >/dev/null

# The repository root is the collection; expose it as onebox.deploy.
collection:
	mkdir -p $(COLL)/ansible_collections/onebox
	ln -sfn $(TOP) $(COLL)/ansible_collections/onebox/deploy

lint: venv collection
	yamllint --strict .
	ansible-lint --profile production --offline
	ansible-doc onebox.deploy.rolling_restart onebox.deploy.preflight >/dev/null
	ansible-doc -t role onebox.deploy.site onebox.deploy.traefik >/dev/null
	for f in site_errors normalize_sites roll_unit traefik_errors traefik_dynamic; do ansible-doc -t filter onebox.deploy.$$f >/dev/null; done

unit: venv collection
	$(PY) -m pytest -q tests/unit

# Scenarios run side by side (each in its own container; they spend most of
# their time waiting on Podman exec round trips), logs printed when all ended.
molecule: venv host collection
	mkdir -p $(CACHE)/logs
	pids=""
	for s in $(SCENARIOS); do molecule test -s $$s > $(CACHE)/logs/molecule-$$s.log 2>&1 & pids="$$pids $$!"; done
	rc=0
	for p in $$pids; do wait $$p || rc=1; done
	for s in $(SCENARIOS); do echo "===== molecule test -s $$s"; cat $(CACHE)/logs/molecule-$$s.log; done
	exit $$rc

test: lint unit molecule

demo: venv host collection
	bash tests/harness/demo.sh

# Not part of `make test`: prints numbers, asserts nothing.
bench-roll: venv host collection
	bash tests/harness/bench-roll.sh

bench-traefik: venv host collection
	bash tests/harness/bench-traefik.sh

clean:
	-for s in $(SCENARIOS); do molecule destroy -s $$s; done
	-podman rm -f onebox-demo onebox-bench onebox-bench-traefik
	rm -rf $(COLL)
