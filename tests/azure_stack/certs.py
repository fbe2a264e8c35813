"""Throwaway test CA and one leaf certificate for every host the stack serves.

A wildcard SAN covers exactly one label, so serverless inference hosts
(``{endpoint}.{region}.models.ai.azure.com``) need one ``*.{region}.models.ai.azure.com`` per region.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Regions whose serverless inference host names the leaf covers.
INFERENCE_REGIONS = (
    "eastus",
    "eastus2",
    "westus",
    "westus3",
    "northcentralus",
    "southcentralus",
    "swedencentral",
    "westeurope",
    "francecentral",
)

LEAF_DNS_NAMES = (
    "management.azure.com",
    "login.microsoftonline.com",
    "*.blob.core.windows.net",
    "*.api.azureml.ms",
    "*.experiments.azureml.net",
    *(f"*.{r}.models.ai.azure.com" for r in INFERENCE_REGIONS),
    "localhost",
)


@dataclass(frozen=True)
class CertFiles:
    ca_pem: Path
    leaf_pem: Path  # leaf followed by the CA (full chain)
    leaf_key_pem: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "phi3ft tests"),
        ]
    )


def generate(directory: Path) -> CertFiles:
    """Write ``ca.pem``, ``leaf.pem`` (chain) and ``leaf-key.pem`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("phi3ft offline Azure test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in LEAF_DNS_NAMES]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("management.azure.com"))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = CertFiles(directory / "ca.pem", directory / "leaf.pem", directory / "leaf-key.pem")
    files.ca_pem.write_bytes(ca.public_bytes(pem))
    files.leaf_pem.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    files.leaf_key_pem.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files
