# Strata: build, test, demo. `make test` installs what it needs itself.
SHELL := /bin/bash
CARGO ?= cargo
STRATA_CACHE ?= $(HOME)/.cache/strata
export STRATA_CACHE
TERRAFORM := $(STRATA_CACHE)/bin/terraform
export STRATA_TERRAFORM := $(TERRAFORM)

.PHONY: all build deps terraform test demo bench docs

all: build

# Debian packages the build and tests use (the lab installs its own node packages;
# the SSH tests of the ssh-client and the provider start their own sshd).
deps:
	@missing=""; for p in openssl python3-venv openssh-server openssh-client sudo; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

terraform: deps
	@bash scripts/install-terraform.sh >/dev/null
	@$(TERRAFORM) version | head -n1

build:
	$(CARGO) build --workspace --bins

test: deps terraform build
	$(CARGO) nextest run --workspace --no-fail-fast --profile ci

demo: deps terraform
	bash scripts/demo.sh

bench: deps terraform
	bash scripts/benchmarks.sh

# Reference pages from the provider's schemas (a test fails when they are stale).
docs:
	$(CARGO) run -q -p terraform-provider-strata --bin strata-docs -- docs
