# Benchmarks: torch.distributed vs Ray vs in-process retrieval, training per retrieval mode, job
# start-up with and without a warm retrieval service, and the retrieval sweep over index sizes.
BENCH_OUT ?= out/bench
BENCH_ARGS ?=
SWEEP_GRID ?= small

.PHONY: bench
bench: install ## retrieval, training and start-up benchmarks sized for 2 cores (~7 min): out/bench/*.json, *.md, retrieval.png
	$(PY) -m rag_job bench retrieval --out $(BENCH_OUT) $(BENCH_ARGS)
	$(PY) -m rag_job bench train --out $(BENCH_OUT)
	$(PY) -m rag_job bench startup --out $(BENCH_OUT)
	@echo; cat $(BENCH_OUT)/retrieval.md; echo; cat $(BENCH_OUT)/train.md; echo; cat $(BENCH_OUT)/startup.md

.PHONY: bench-scale
bench-scale: install ## the largest retrieval point a 16-core / 64 GB machine holds (2M x 768 flat, W up to 8), then the wiki_dpr table from out/bench/sweep.json if a sweep ran
	$(PY) -m rag_job bench retrieval --scale --out $(BENCH_OUT)/scale $(BENCH_ARGS)
	@if [ -f $(BENCH_OUT)/sweep.json ]; then $(PY) -m rag_job bench scale-table --sweep $(BENCH_OUT)/sweep.json --out $(BENCH_OUT); fi

.PHONY: bench-sweep
bench-sweep: install ## retrieval over N x index type (small grid, a few minutes on 2 cores; SWEEP_GRID=full for a big machine): out/bench/sweep.*
	$(PY) -m rag_job bench retrieval --sweep --grid $(SWEEP_GRID) --out $(BENCH_OUT) $(BENCH_ARGS)
	@echo; cat $(BENCH_OUT)/sweep.md
