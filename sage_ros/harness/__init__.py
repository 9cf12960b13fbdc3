"""Harness for the demo, the benchmarks and the tests: DDS on loopback, camera players, recorders, the demo."""
