# gpufleet: make lab (a simulated two-region fleet on this machine), make test (lint, sanity, docs lint, unit, molecule).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
INVENTORY := inventories/lab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv host-packages lab lab-down test lint sanity docs-lint unit promtool mtail molecule molecule-default molecule-gpu-stack lab-image test-scaling test-scaling-ec2 bench bench-peer-venv bench-peer-check bench-round-trip bench-control-plane bench-rollout bench-scaling docs clean

help:
	@echo "make lab       bring up the simulated two-region GPU fleet and provision it with site.yml"
	@echo "make lab-down  remove the lab's containers and network"
	@echo "make test      lint, ansible-test sanity, docs lint, unit tests and molecule scenarios"
	@echo "make test-scaling  the scaling loop end to end on a running lab (not in make test)"
	@echo "make test-scaling-ec2  a cloud pool's EC2 Auto Scaling group, in moto, resized on a running lab"
	@echo "make bench     the serving-path benchmarks (docs/benchmarks.md)"
	@echo "make bench-scaling  make test-scaling on a running lab, its table and plot written into docs/benchmarks.md"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

lab: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/lab.yml
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/lab_urls.yml

lab-down: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/lab.yml -e lab_state=absent

test: lint sanity docs-lint unit molecule

# Every Debian package the tests run (NGINX for the benchmark's loopback tests), in this one place. Debian's
# postinst would start NGINX on port 80: a policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d
# and deb-systemd-invoke from starting any service during the install, and the unit is left disabled, so this
# machine runs nothing the tests do not start themselves.
# nftables: `nft -c` checks the host firewall's rules (tests/unit/firewall); nothing is ever loaded here.
HOST_PACKAGES := nginx libnginx-mod-http-js nftables
host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing host packages: $$missing (no service started)"; \
	  policy=/usr/sbin/policy-rc.d; created=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' >$$policy; chmod 0755 $$policy; created=1; fi; \
	  trap '[ -z "$$created" ] || rm -f '$$policy EXIT; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now nginx.service 2>/dev/null || true; fi; \
	fi

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ruff check .
	$(BIN)/ansible-lint

# ansible-test sanity, offline and without a container, on the collection as it ships, copied from the working
# tree (tests/collection_tree.py says why); findings wrong for this collection: tests/sanity/ignore-2.19.txt.
sanity: venv
	$(BIN)/python tests/collection_tree.py sanity

# Every plugin's documentation as ansible-doc and antsibull-docs read it (filters: plugins/filter/<name>.yml).
docs-lint: venv
	$(BIN)/python tests/collection_tree.py docs-lint

unit: venv promtool mtail host-packages
	$(BIN)/python -m pytest tests/unit

# promtool and amtool check and test the monitoring rules; taken from Debian's packages without installing
# them, so that no Prometheus service starts on this machine.
promtool: .cache/prometheus/usr/bin/promtool
.cache/prometheus/usr/bin/promtool:
	mkdir -p .cache/debs .cache/prometheus
	apt-get update -qq
	cd .cache/debs && apt-get download prometheus prometheus-alertmanager
	for deb in .cache/debs/prometheus_*.deb .cache/debs/prometheus-alertmanager_*.deb; do dpkg -x $$deb .cache/prometheus; done

# mtail (the gateway_usage role's exporter), run by the unit tests over a sample usage log; taken from Debian's
# package the same way, so that no mtail service starts on this machine.
mtail: .cache/mtail/usr/bin/mtail
.cache/mtail/usr/bin/mtail:
	mkdir -p .cache/debs .cache/mtail
	apt-get update -qq
	cd .cache/debs && apt-get download mtail
	dpkg -x .cache/debs/mtail_*.deb .cache/mtail

molecule: molecule-default molecule-gpu-stack

molecule-default: lab-image
	$(BIN)/molecule test -s default

molecule-gpu-stack: lab-image
	$(BIN)/molecule test -s gpu_stack

# The scaling loop end to end on a running lab (make lab first; about 8 minutes, not in `make test`): overload,
# the rulebook brings the standby node in, then gives it back after the cooldown (tests/scaling/test_loop.py).
test-scaling: venv
	$(BIN)/python -m pytest -s -p no:cacheprovider tests/scaling/test_loop.py

# A cloud pool on a running lab (make lab first; about 4 minutes, not in `make test`): an EC2 Auto Scaling group in
# moto on loopback grows by a VM that the gpu_fleet inventory finds and scale.yml provisions and joins, then shrinks
# by draining that VM before terminating it (tests/scaling/test_ec2.py).
test-scaling-ec2: venv
	flock /tmp/gpufleet-lab.lock $(BIN)/python -m pytest -s -p no:cacheprovider tests/scaling/test_ec2.py

# Podman set up and the lab image built (again only when its recipe changed), without containers.
lab-image: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/lab.yml --tags lab_image

# The peer client of the streaming and mixed-length comparisons (aiperf), in a venv of its own: its pins conflict
# with the toolchain's (requirements/bench-peer.txt says which); reinstalled only when that file changes.
PEER_VENV := .cache/bench-peer-venv
bench-peer-venv: $(PEER_VENV)/.installed
$(PEER_VENV)/.installed: requirements/bench-peer.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet -r requirements/bench-peer.txt
	touch $@

# The loopback comparisons of docs/benchmarks.md (about 15 minutes, the peer client included); they rewrite its
# results section and the summary tables of docs/benchmarks.md and README.md.
# The peer client against a simulator on loopback (tests/bench/test_peer_live.py), before the benchmark relies on it.
bench-peer-check: venv bench-peer-venv
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/bench/test_peer_live.py

bench: venv bench-peer-check
	PYTHONPATH=tests/bench $(BIN)/python -m gpufleet_bench suite --out .cache/bench --img docs/img --docs docs/benchmarks.md \
	  --summary docs/benchmarks.md --summary README.md

# Comparisons 2 (keepalive) and 1 (streaming) with the simulators across the userspace delay line (loopback, 0.5 and
# 2 ms one way; root; about 10 minutes); rewrites the round-trip table of docs/benchmarks.md.
bench-round-trip: venv
	$(BIN)/python tests/bench/round_trip.py --out .cache/bench --docs docs/benchmarks.md

# site.yml on the lab with the collection's ansible.cfg against Ansible's defaults; recreates the lab.
bench-control-plane: venv
	flock /tmp/gpufleet-lab.lock $(BIN)/python tests/bench/control_plane.py --out .cache/bench --docs docs/benchmarks.md

# A change that restarts every model server under streaming load: the rollout against all at once; needs make lab.
bench-rollout: venv
	flock /tmp/gpufleet-lab.lock $(BIN)/python tests/bench/rollout.py --out .cache/bench --img docs/img --docs docs/benchmarks.md

# The scaling loop of test-scaling, whose passing run writes its table into section 10 of docs/benchmarks.md and its
# plot (docs/img/bench-scaling.png); needs make lab, about 8 minutes.
bench-scaling: venv
	GPUFLEET_SCALING_DOCS=docs/benchmarks.md GPUFLEET_SCALING_IMG=docs/img \
	  flock /tmp/gpufleet-lab.lock $(BIN)/python -m pytest -s -p no:cacheprovider tests/scaling/test_loop.py

# The role pages in docs/roles/ are generated from each role's meta/argument_specs.yml.
docs: venv
	$(BIN)/python tests/role_docs.py

clean: lab-down
	rm -rf $(VENV) .cache
