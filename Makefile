# The two set-up commands of the README.
.PHONY: demo test lint

demo:  ## install, submit the reference submissions, evaluate all tracks, print the leaderboards
	scripts/demo.sh

test:  ## install, start the test services (Docker, PostgreSQL, Chromium), run the test suite
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
