"""Benchmarks (not tests): throughput beside peers; suites and reports come later."""
