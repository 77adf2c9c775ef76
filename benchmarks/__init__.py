"""Benchmark scripts: run each from the repository root as `python -m benchmarks.NAME`.

A package, so that the scripts import each other (`from benchmarks import learning_results`) and
the tests import them like any other module, with no path juggling. Not part of either wheel.
"""
