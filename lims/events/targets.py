"""Where a webhook may send: not into the lab's own network unless an allow-list says so.

A webhook URL is given by a person and fetched by the worker, inside the network: without a
check it can reach loopback services (the shared PostgreSQL port was reached in the review),
private addresses and the link-local cloud metadata address. The host is resolved and every
address it resolves to must be public; ``LIMS_WEBHOOK_ALLOWED_HOSTS`` names hosts (``host`` or
``host:port``) that may be internal anyway (the lab's own receiver; tests on loopback). The
check runs when the webhook is saved and again before each delivery (DNS may change).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def webhook_target_check(url: str) -> None:
    """Raise ValidationError unless ``url`` is http(s) to public addresses or allow-listed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"url": "a webhook URL must be http:// or https:// with a host"})
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValidationError({"url": f"bad port in the webhook URL ({exc})"}) from exc
    allowed = {h.strip().lower() for h in settings.LIMS_WEBHOOK_ALLOWED_HOSTS if h.strip()}
    if host in allowed or f"{host}:{port}" in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError({"url": f"the webhook host {host} does not resolve"}) from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if _refused(address):
            raise ValidationError(
                {
                    "url": f"the webhook host {host} resolves to {address}, a loopback, "
                    "private, link-local or reserved address; add it to "
                    "LIMS_WEBHOOK_ALLOWED_HOSTS if it is the lab's own receiver"
                }
            )
