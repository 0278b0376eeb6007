# Two commands matter: `make run` (server + throwaway sample database when
# DATABASE_URL is unset) and `make test` (the whole suite). Both install what
# they need into .venv first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-checkov.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint docs devdb devdb-down clean bench bench-workers bench-peers bench-profile bench-instructions bench-failover bench-fair-share bench-statements soak

$(STAMP): requirements.txt requirements-dev.txt requirements-checkov.txt
	@scripts/ensure-postgres.sh
	@scripts/ensure-debian-package.sh promtool prometheus
	@scripts/ensure-debian-package.sh /usr/sbin/pgbouncer pgbouncer
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "pgmcp-http needs Python 3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@PYTHON=$(PYTHON) scripts/ensure-checkov.sh
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	@scripts/run.sh

test: $(STAMP)
	@scripts/ensure-debian-package.sh /usr/sbin/pgbouncer pgbouncer
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# docs/configuration.md is generated from pgmcp_http/config/variables.py; a test fails when they differ.
docs: $(STAMP)
	$(PY) -m devkit.configuration_page

# Benchmarks and the soak print figures and assert nothing; none runs in CI (docs/performance.md:
# "Running the benchmarks"). `make bench SAVE=1` also writes bench/results/<date>.md.
bench: $(STAMP)
	@scripts/ensure-debian-package.sh /usr/sbin/pgbouncer pgbouncer
	@scripts/ensure-debian-package.sh wrk wrk
	BENCH_SAVE=$(SAVE) $(PY) bench/run.py
	$(PY) bench/identity.py
	$(PY) bench/lineage.py
	$(PY) bench/oauth.py

bench-workers: $(STAMP)
	@scripts/ensure-debian-package.sh wrk wrk
	$(PY) bench/workers.py

bench-profile: $(STAMP)
	@scripts/ensure-debian-package.sh wrk wrk
	@test -x $(VENV)/bin/py-spy || $(PY) -m pip install --quiet --disable-pip-version-check py-spy==0.4.3
	BENCH_SAVE=$(SAVE) $(PY) bench/hotpath.py

# What each part of a read's SQL costs PostgreSQL (docs/performance.md: "One round trip per read").
# Instructions one call costs in process, counted by callgrind (deterministic, unlike CPU time here).
bench-instructions: $(STAMP)
	@scripts/ensure-debian-package.sh /usr/bin/valgrind valgrind
	BENCH_SAVE=$(SAVE) $(PY) bench/instructions.py

bench-statements: $(STAMP)
	BENCH_SAVE=$(SAVE) $(PY) bench/statements.py

bench-failover: $(STAMP)
	BENCH_SAVE=$(SAVE) $(PY) bench/failover.py

bench-peers: $(STAMP)
	@scripts/ensure-debian-package.sh wrk wrk
	BENCH_SAVE=$(SAVE) $(PY) bench/peers.py

# Two callers' latency while a third floods, with the fair share at its default, at 2 and off
# (docs/security.md: "Fair share per caller"). `make bench-fair-share SAVE=1` appends to bench/results/<date>.md.
bench-fair-share: $(STAMP)
	BENCH_SAVE=$(SAVE) $(PY) bench/fair_share.py

soak: $(STAMP)
	@scripts/ensure-debian-package.sh wrk wrk
	$(PY) bench/soak.py

devdb: $(STAMP)
	@$(PY) -m devkit.devdb up

devdb-down: $(STAMP)
	@$(PY) -m devkit.devdb down

clean: devdb-down
	rm -rf $(VENV) .devdb
