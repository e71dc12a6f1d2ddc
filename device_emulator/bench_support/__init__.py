"""Helpers of the side-by-side benchmark comparison (``python -m device_emulator.bench_support.compare``)."""
