VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: venv run test schema

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# Development only, before the first release: rebuild the single initial migration from the models.
schema: venv
	rm -rf /tmp/idp-schema && mkdir -p /tmp/idp-schema
	rm -f migrations/versions/0001_initial_schema.py
	IDP_INSTANCE_PATH=/tmp/idp-schema $(VENV)/bin/flask --app idp db migrate -m "initial schema" >/dev/null
	f=$$(ls migrations/versions/*_initial_schema.py) && \
	  sed -i -e 's/idp\.models\.base\.UTCDateTime(timezone=True)/sa.DateTime(timezone=True)/g' \
	         -e "s/^revision = .*/revision = '0001'/" -e 's/^Revision ID: .*/Revision ID: 0001/' $$f && \
	  mv $$f migrations/versions/0001_initial_schema.py
	@echo "migrations/versions/0001_initial_schema.py regenerated"
