"""stocksyncd: a daemon that keeps stock and supplier data in step between systems."""

__version__ = "0.1.0"
