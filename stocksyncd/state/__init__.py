"""Durable state: runs and their changes, values, quotas, leases, replicas, reviews."""

from stocksyncd.state.api import (
    ChangeRecord,
    Lease,
    LeaseFence,
    ReplicaInfo,
    ReviewEntry,
    RunRecord,
    StateStore,
    StoreUnavailable,
)
from stocksyncd.state.sql import SqlStateStore, open_store

__all__ = [
    "ChangeRecord",
    "Lease",
    "LeaseFence",
    "ReplicaInfo",
    "ReviewEntry",
    "RunRecord",
    "SqlStateStore",
    "StateStore",
    "StoreUnavailable",
    "open_store",
]
