"""Durable state: runs and their changes, values, quotas, leases, replicas, reviews."""

from stocksyncd.state.api import (
    ChangeRecord,
    Lease,
    ReplicaInfo,
    ReviewEntry,
    RunRecord,
    StateStore,
)
from stocksyncd.state.sql import SqlStateStore, open_store

__all__ = [
    "ChangeRecord",
    "Lease",
    "ReplicaInfo",
    "ReviewEntry",
    "RunRecord",
    "SqlStateStore",
    "StateStore",
    "open_store",
]
