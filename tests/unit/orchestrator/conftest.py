"""Fixtures of the orchestrator unit tests: fresh fakes per test, sharing one operation log."""

from __future__ import annotations

import pytest
from orchestrator_fakes import (
    Clock,
    FakeConsumer,
    FakeProducer,
    FakeStore,
    FakeTenants,
    MemoryArtifacts,
    OperationLog,
)


@pytest.fixture
def operations() -> OperationLog:
    return OperationLog()


@pytest.fixture
def producer(operations: OperationLog) -> FakeProducer:
    return FakeProducer(operations)


@pytest.fixture
def consumer(operations: OperationLog) -> FakeConsumer:
    return FakeConsumer(operations)


@pytest.fixture
def store(operations: OperationLog) -> FakeStore:
    return FakeStore(operations)


@pytest.fixture
def artifacts() -> MemoryArtifacts:
    return MemoryArtifacts()


@pytest.fixture
def tenants() -> FakeTenants:
    return FakeTenants()


@pytest.fixture
def clock() -> Clock:
    return Clock()
