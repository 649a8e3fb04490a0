# Strata: build, test, demo. `make test` installs what it needs itself.
SHELL := /bin/bash
CARGO ?= cargo
STRATA_CACHE ?= $(HOME)/.cache/strata
export STRATA_CACHE
TERRAFORM := $(STRATA_CACHE)/bin/terraform
export STRATA_TERRAFORM := $(TERRAFORM)
# Tools this Makefile installs itself (Terraform's launcher, cargo-nextest) live here.
export PATH := $(STRATA_CACHE)/bin:$(PATH)
NEXTEST_VERSION ?= 0.9.143

.PHONY: all build deps terraform nextest test demo demo-down bench docs release

all: build

# Debian packages the build and tests use (the lab installs its own node packages;
# the SSH tests of the ssh-client and the provider start their own sshd; gnupg, zip and
# unzip pack, sign and check the release).
deps:
	@missing=""; for p in openssl python3-venv openssh-server openssh-client sudo gnupg zip unzip; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# The default `terraform` (1.15.5) plus the compatibility matrix's terraform-1.6.6,
# terraform-1.10.5 and terraform-1.15.5 (tests/terraform_versions.rs).
terraform: deps
	@bash scripts/install-terraform.sh >/dev/null
	@bash scripts/install-terraform-versions.sh >/dev/null
	@$(TERRAFORM) version | head -n1

# cargo-nextest runs the tests; built from crates.io (pinned) when this machine lacks it.
nextest:
	@if ! $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "installing cargo-nextest $(NEXTEST_VERSION) into $(STRATA_CACHE)/bin (a few minutes, once)"; \
		$(CARGO) install --locked --quiet cargo-nextest --version $(NEXTEST_VERSION) --root $(STRATA_CACHE); \
	fi

build:
	$(CARGO) build --workspace --bins
	@bash scripts/build-agent-static.sh >/dev/null

# The provider as the registry publishes it, and a mirror to `terraform init` from, in
# dist/ (scripts/release.sh). Signs with STRATA_GPG_KEY_ID or STRATA_GPG_KEY_FILE.
release: deps
	bash scripts/release.sh

test: deps terraform nextest build
	$(CARGO) nextest run --workspace --no-fail-fast --profile ci

# EXAMPLE=k3s-ha applies examples/k3s-ha instead of examples/ha-cluster.
demo: deps terraform
	STRATA_DEMO_EXAMPLE=$(or $(EXAMPLE),ha-cluster) bash scripts/demo.sh up

demo-down:
	bash scripts/demo.sh down

bench: deps terraform
	bash scripts/benchmarks.sh

# Reference pages from the provider's schemas (a test fails when they are stale).
docs:
	$(CARGO) run -q -p terraform-provider-strata --bin strata-docs -- docs
