"""gRPC credentials from PEM files: server side (TLS or mutual TLS) and client side."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.runtime.config import ServiceSettings


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """Build the server's credentials from its TLS settings.

    Args:
        settings: Certificate, key and CA paths and whether client certificates are required.

    Returns:
        None when no certificate is configured (plaintext); otherwise TLS credentials that, with
        ``tls_require_client_cert``, accept only clients presenting a certificate signed by the CA.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    root = settings.tls_ca_file.read_bytes() if settings.tls_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=root,
        require_client_auth=settings.tls_require_client_cert,
    )


def channel_credentials(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> grpc.ChannelCredentials:
    """Build client credentials for calling a TLS server.

    Args:
        ca_file: CA bundle that signed the server's certificate; the system roots when None.
        cert_file: This client's certificate, for servers that require one.
        key_file: The private key of ``cert_file``.

    Returns:
        Channel credentials for ``grpc.aio.secure_channel``.

    Raises:
        ValueError: Only one of ``cert_file`` and ``key_file`` was given.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both cert_file and key_file")
    return grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes() if ca_file is not None else None,
        private_key=key_file.read_bytes() if key_file is not None else None,
        certificate_chain=cert_file.read_bytes() if cert_file is not None else None,
    )


def client_credentials_from_settings(settings: ServiceSettings) -> grpc.ChannelCredentials:
    """Client credentials for service-to-service calls, reusing this process's own certificate.

    Args:
        settings: The calling process's TLS settings.

    Returns:
        Credentials trusting ``tls_ca_file`` and presenting ``tls_cert_file`` when configured.
    """
    return channel_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
