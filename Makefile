# The two README commands. Everything else is in scripts/.
.PHONY: run test lint schema bench

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/test.sh --lint-only

schema:
	DJANGO_SETTINGS_MODULE=lims.settings.test .venv/bin/python manage.py spectacular --file schema.yml --validate

bench:
	.venv/bin/python bench/ingest_cycler.py
