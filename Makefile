# Convenience targets; each one is `bash scripts/setup.sh TARGET` (which also works where
# `make` is not installed: that is what the README's Quick start uses).
.PHONY: demo test test-fast setup lint bench

demo:
	bash scripts/setup.sh demo

# make test ARGS="-k phantom"
test:
	bash scripts/setup.sh test $(ARGS)

# the quick subset: every test not marked slow (README, Development)
test-fast:
	bash scripts/setup.sh test -m "not slow" $(ARGS)

setup:
	bash scripts/setup.sh setup dev

lint:
	bash scripts/setup.sh lint

bench:
	bash scripts/setup.sh bench
