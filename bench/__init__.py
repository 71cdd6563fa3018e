"""The benchmark harness of issue 8: `make bench-quick`, `make bench`; see docs/PERFORMANCE.md."""
