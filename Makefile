.PHONY: demo test services bootstrap down
demo:        ## run the main job end to end on the shipped sample, with live progress
	bash scripts/demo.sh
test:        ## install, start services, run all tests (what CI runs)
	bash scripts/test.sh
services:    ## start RabbitMQ, FerretDB and the stand-ins (idempotent)
	bash scripts/services.sh up
bootstrap:   ## create .venv and migrate Airflow's SQLite DB
	bash scripts/bootstrap.sh
down:        ## stop what services.sh started
	bash scripts/services.sh down
bench:       ## measure throughput, ingest, scale, overhead, dedup, a live run; writes docs/PERFORMANCE.md
	bash scripts/bench.sh
bench-smoke: ## the benchmark at tiny sizes (~1 min), written to .run/PERFORMANCE-smoke.md
	bash scripts/bench.sh --smoke --out .run/PERFORMANCE-smoke.md
.PHONY: bench bench-smoke
