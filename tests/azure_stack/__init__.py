"""The offline Azure stack: the real Azure SDKs over HTTPS against a stateful local Azure.

See README.md in this folder. Entry points: ``AzureStack`` (library), the pytest fixtures in
``pytest_plugin``, and ``python -m tests.azure_stack`` (standalone, prints the variables to export).
"""

from .credential import FakeCredential, decode_jwt, make_jwt
from .stack import AzureStack, RequestRecord
from .state import (
    LOCATION,
    RESOURCE_GROUP,
    ROLE_AI_DEVELOPER,
    ROLE_CONTRIBUTOR,
    ROLE_OWNER,
    SP_CLIENT_ID,
    SP_CLIENT_SECRET,
    STORAGE_ACCOUNT,
    SUBSCRIPTION_ID,
    TENANT_ID,
    USER_OID,
)

__all__ = [
    "LOCATION",
    "RESOURCE_GROUP",
    "ROLE_AI_DEVELOPER",
    "ROLE_CONTRIBUTOR",
    "ROLE_OWNER",
    "SP_CLIENT_ID",
    "SP_CLIENT_SECRET",
    "STORAGE_ACCOUNT",
    "SUBSCRIPTION_ID",
    "TENANT_ID",
    "USER_OID",
    "AzureStack",
    "FakeCredential",
    "RequestRecord",
    "decode_jwt",
    "make_jwt",
]
