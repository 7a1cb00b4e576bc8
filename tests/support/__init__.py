"""Helpers shared by the tests (never imported by ovembed or the benchmarks)."""
