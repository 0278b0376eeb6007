"""Registration with the TAS MCP Federation: the body it accepts, and optional self-registration.

The federation learns about a member server from one ``POST
/api/v1/federation/servers``; ``federation/register.json`` is that body for an
operator to send once. With ``FEDERATION_URL`` set the server sends it itself,
from a background thread of one worker, so serving never waits on the
federation (see :mod:`pgmcp_http.federation.registrar`).

This package never imports Flask: it is usable from a script or a test as it is.
"""

from pgmcp_http.federation.body import DEFAULT_HEALTH_PATH, registration_body
from pgmcp_http.federation.client import FederationClient, FederationError
from pgmcp_http.federation.registrar import Registrar, start_registrar

__all__ = [
    "DEFAULT_HEALTH_PATH",
    "FederationClient",
    "FederationError",
    "Registrar",
    "registration_body",
    "start_registrar",
]
