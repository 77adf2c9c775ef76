"""Shared fixtures for the test suite."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

# Tests use small tensors, where a second thread costs more than it gives on a shared 2-core machine.
torch.set_num_threads(1)

# CI gets more examples; local runs stay quick. Deadlines are off: machines are shared and noisy.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
