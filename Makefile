# The portal's commands. `make run` and `make test` need only Python 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench worker messages clean install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Production: the runtime dependencies only (no test or lint tools) into the virtualenv.
# Not $(VENV)/.installed: that marks a development install, which `make install` is not.
install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e .

# Links in emails point at the address the portal was started on, unless SITE_URL is set.
run: export SITE_URL ?= http://$(HOST):$(PORT)
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo ""
	@echo "Portal:        http://$(HOST):$(PORT)/        (Online Functions, Overnight Report Download)"
	@echo "DMS:           http://$(HOST):$(PORT)/dms/    (Security Management Functions)"
	@echo "Emails:        http://$(HOST):$(PORT)/outbox/ (activation links and OTP codes land here)"
	@echo "Admin:         http://$(HOST):$(PORT)/admin/  (log in as hkex.ops; the OTP arrives in the outbox)"
	@echo "Email links:   $$SITE_URL (set SITE_URL to change)"
	@echo "Set up 2FA:    open B01234U01's activation email in the outbox, follow the link."
	@echo "Smartcard:     'Login with Smartcard', then 'use a simulated demo card' (DEMO ONLY)."
	@echo "Readiness:     http://$(HOST):$(PORT)/admin/readiness/ (staff); the schedule runs in a thread of the server each minute."
	@echo ""
	DEMO_BEAT=1 $(PY) manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m common.i18n check
	SECRET_KEY=lint-only-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') DEBUG=false \
		PROXY_SECRET=lint-only-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
		ALLOWED_HOSTS=portal.example $(PY) manage.py check --deploy --fail-level WARNING

bench: $(VENV)/.installed
	STRONG_HASHER_IN_TESTS=1 LOG_LEVEL=WARNING $(PY) -m tests.bench

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A ccass worker --loglevel=INFO

messages: $(VENV)/.installed
	$(PY) -m common.i18n compile

clean:
	rm -rf $(VENV) var
