"""InvenTree REST API client (parts, categories, metadata, supplier parts, price breaks)."""

from stocksyncd.clients.inventree.client import (
    ID_ORDERING_API_VERSION,
    LONG_LINK_API_VERSION,
    METADATA_API_VERSION,
    InvenTreeClient,
    fit_link,
    pick_next_pk,
    server_root,
)
from stocksyncd.clients.inventree.errors import API, InvenTreeValidationError, inventree_check
from stocksyncd.clients.inventree.models import (
    Category,
    Company,
    ManufacturerPart,
    Part,
    PriceBreak,
    SupplierPart,
    to_decimal,
)

__all__ = [
    "API",
    "ID_ORDERING_API_VERSION",
    "LONG_LINK_API_VERSION",
    "METADATA_API_VERSION",
    "Category",
    "Company",
    "InvenTreeClient",
    "InvenTreeValidationError",
    "ManufacturerPart",
    "Part",
    "PriceBreak",
    "SupplierPart",
    "fit_link",
    "inventree_check",
    "pick_next_pk",
    "server_root",
    "to_decimal",
]
