"""The machine record a model benchmark writes beside its figures (scripts in loadtests/ import it)."""

from __future__ import annotations

import os
import platform
from typing import Any


def torch_machine(load_before: float) -> dict[str, Any]:
    """Platform, CPU count, torch and Python versions, the GPU if any, and the 1-minute load average
    before the run and now (a benchmark on a busy machine says so)."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
