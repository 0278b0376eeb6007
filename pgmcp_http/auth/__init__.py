"""Who is calling: credentials in, a :class:`~pgmcp_http.identity.Caller` or a challenge out.

No Flask and no WSGI here: the web layer hands over request headers and turns
the verdict into a status. One module per kind of credential or duty:

- ``tokens``: the static tokens of AUTH_TOKENS / AUTH_TOKENS_FILE;
- ``keyfile``: JWTs signed with the key of JWT_KEY_FILE;
- ``access_tokens``: OAuth access tokens from the configured issuers (RFC 9068);
- ``keysets``: each issuer's discovery document and signing keys, cached per worker;
- ``introspection``: opaque tokens checked at the issuer (RFC 7662);
- ``claims``: what a validated token's claims mean (subject, role);
- ``scopes``: which scopes a call needs;
- ``resource``: this server as an OAuth protected resource (RFC 9728 metadata);
- ``challenges``: the ``WWW-Authenticate`` headers (RFC 6750);
- ``identities``: the callers known at start-up;
- ``gate``: all of the above, in the order a request meets them.
"""
