"""``/.well-known/oauth-protected-resource[/<path>]``: where OAuth clients learn how to sign in here.

Served only when OAUTH_RESOURCE is set, from that setting alone (see
:mod:`pgmcp_http.auth.resource`), at the path-inserted URL of the resource and
at the root one, open to every origin (the document is public and browser
clients such as the MCP Inspector fetch it from their own page).
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Flask, Response

from pgmcp_http.auth.resource import metadata_document, metadata_paths
from pgmcp_http.config import OAuthSettings

__all__ = ["register_metadata"]

CACHE_CONTROL = "public, max-age=300"
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, OPTIONS",
         "Access-Control-Allow-Headers": "MCP-Protocol-Version, Authorization", "Access-Control-Max-Age": "600"}


def register_metadata(app: Flask, settings: OAuthSettings) -> None:
    """Add the metadata routes to ``app``; the document is encoded once, here."""
    body = orjson.dumps(metadata_document(settings))
    blueprint = Blueprint("oauth_metadata", __name__)

    def metadata() -> Response:
        response = Response(body, mimetype="application/json")
        response.headers.update(_CORS)
        response.headers["Cache-Control"] = CACHE_CONTROL
        return response

    def preflight() -> Response:
        response = Response(status=204)
        response.headers.update(_CORS)
        return response

    for number, path in enumerate(metadata_paths(settings.resource)):
        blueprint.add_url_rule(path, f"metadata_{number}", metadata, methods=["GET"], provide_automatic_options=False)
        blueprint.add_url_rule(path, f"preflight_{number}", preflight, methods=["OPTIONS"],
                               provide_automatic_options=False)
    app.register_blueprint(blueprint)
