"""Benchmarks: a lean open-loop load generator, scenarios and the phase ladder.

The bench reports everything and asserts nothing; speed claims live in
BENCHMARKS.md as ratios measured in the same run against references.
"""
