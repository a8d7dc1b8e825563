"""The embedded stack: a Kafka-protocol broker (noida-db), Redis, Ray Serve, Triton, the orchestrator and
Prometheus as local processes under one supervisor (`orate up` / `orate status` / `orate down`)."""

from shared.stack.config import StackConfig, StackPorts, free_stack_ports, load_stack_config
from shared.stack.control import Stack, StackError, StackStatus, StackUrls, running_stack

__all__ = [
    "Stack",
    "StackConfig",
    "StackError",
    "StackPorts",
    "StackStatus",
    "StackUrls",
    "free_stack_ports",
    "load_stack_config",
    "running_stack",
]
