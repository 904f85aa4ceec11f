"""Benchmarks are scripts run by hand (see README.md here), never collected by pytest."""

collect_ignore_glob = ["bench_*.py"]
