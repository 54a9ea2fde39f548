"""Integration types by name; each module is imported only when configured."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stocksyncd.config import Config
    from stocksyncd.integrations.base import Integration, Resources


class Builder(Protocol):
    """``build(name, cfg, config, res)`` in each integration module."""

    def __call__(self, name: str, cfg: Any, config: Config, res: Resources) -> Integration: ...


BUILDERS = {
    "moysklad-insales": "stocksyncd.integrations.moysklad_insales",
    "kak2c-insales": "stocksyncd.integrations.kak2c_insales",
    "mouser-inventree": "stocksyncd.integrations.mouser_inventree",
}


def build(name: str, cfg: Any, config: Config, res: Resources) -> Integration:
    """Create the integration ``name`` from its config section."""
    module = importlib.import_module(BUILDERS[cfg.type])
    builder: Builder = module.build
    return builder(name, cfg, config, res)
