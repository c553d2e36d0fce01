"""Benchmarks (not tests): suites of jobs run by `runner` (local process pool or Ray),
reports with aggregate metrics (`report`, `stats`), and the throughput benchmark beside
peers (`throughput`, `fused`, `peers`)."""
