"""The web app: /healthz, /metrics, the status page and the Mouser review page."""

from stocksyncd.runtime.web.app import create_app

__all__ = ["create_app"]
