// A real OAuth 2.1 authorization server (oidc-provider) on 127.0.0.1 for the test suite; driven by
// tests/oauth_server.py. Tokens for any loopback resource come out as RFC 9068 JWTs (typ at+jwt,
// aud = the resource, scope from "db.schema db.read db.write"), or opaque for clients named opaque-*.
//
// Input (environment):
//   AS_PORT          port to listen on; 0 = any free port
//   AS_KEYS_FILE     private JWKS JSON ({"keys": [...]}, RS256 with kid); the first key signs
//   AS_CLIENTS_JSON  oidc-provider client metadata list, e.g. [{client_id, client_secret, grant_types, ...}]
//   AS_CLAIMS_JSON   extra access-token claims: {"accounts": {id: {...}}, "clients": {id: {...}}}
// Output: one JSON line on stdout once listening, {"issuer": "http://127.0.0.1:<port>", "port": <port>};
// everything else (oidc-provider notices included) goes to stderr.
//
// Test-control routes, answered here before the provider sees the request:
//   POST /_test/keys   body: private JWKS; a NEW Provider with those keys serves every later request
//                      (the identity provider rotating its signing key while the resource server runs)
//   POST /_test/jwks   body: {"down": true|false}; while down, GET /jwks answers 503
//   GET  /_test/stats  {"jwks_requests": n, "discovery_requests": n, "token_requests": n,
//                       "introspection_requests": n}

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import Provider, { errors } from "oidc-provider";

// oidc-provider prints its notices with console.info: keep stdout for the one JSON line.
console.log = console.error;
console.info = console.error;

const API_SCOPES = ["db.schema", "db.read", "db.write"];
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
const ACCESS_TOKEN_TTL = 300;

const clients = JSON.parse(process.env.AS_CLIENTS_JSON || "[]");
const claims = JSON.parse(process.env.AS_CLAIMS_JSON || "{}");
// One cookie key for every Provider instance, so a browser session survives a key rotation.
const cookieKeys = [randomBytes(32).toString("base64url")];

function readKeys(text) {
  const parsed = JSON.parse(text);
  const keys = Array.isArray(parsed) ? parsed : parsed.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new TypeError("a JWKS with at least one key is needed");
  return keys;
}

// Any http resource on loopback is one of ours (each test server picks its own port).
async function getResourceServerInfo(_ctx, resource, client) {
  const url = URL.parse(resource);
  if (!url || url.protocol !== "http:" || !LOOPBACK_HOSTS.has(url.hostname)) {
    throw new errors.InvalidTarget(`resource ${resource} is not a loopback http URL`);
  }
  return {
    scope: API_SCOPES.join(" "),
    audience: resource,
    // Clients named opaque-* get opaque tokens (for the resource server's RFC 7662 introspection).
    accessTokenFormat: client?.clientId?.startsWith("opaque-") ? "opaque" : "jwt",
    accessTokenTTL: ACCESS_TOKEN_TTL,
    jwt: { sign: { alg: "RS256" } },
  };
}

// Client claims first, then the account's (a user token carries both; a client_credentials token only the client's).
async function extraTokenClaims(_ctx, token) {
  const merged = { ...claims.clients?.[token.clientId], ...claims.accounts?.[token.accountId] };
  return Object.keys(merged).length ? merged : undefined;
}

// oidc-provider limits a client to the scopes it registered with (RFC 7591 `scope`), at /authorize and /token.
// The MCP SDK registers once with the scopes of its first 401 and later steps up to db.write, so a
// dynamically registered client is allowed every API scope, as IdPs that grant a default scope set do.
function widenRegisteredScope(ctx, _key, _value, metadata) {
  if (ctx?.oidc?.route !== "registration") return;
  const requested = metadata.scope ? metadata.scope.split(" ") : [];
  metadata.scope = [...new Set([...requested, ...API_SCOPES])].join(" ");
}

// The account id is whatever name was typed at the devInteractions login, so `sub` = that user.
async function findAccount(_ctx, sub) {
  return { accountId: sub, claims: async () => ({ sub }) };
}

function configuration(keys) {
  return {
    clients,
    jwks: { keys },
    scopes: ["openid", "offline_access", ...API_SCOPES],
    findAccount,
    extraTokenClaims,
    extraClientMetadata: { properties: ["pgmcp_test"], validator: widenRegisteredScope },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A client registered with pgmcp_test.default_resource gets tokens for it when it names none (as the
        // TAS federation's client_credentials grant, which sends no `resource`).
        defaultResource: async (_ctx, client, oneOf) => oneOf ?? client?.pgmcp_test?.default_resource,
        useGrantedResource: async () => true,
        getResourceServerInfo,
      },
    },
  };
}

function makeProvider(issuer, keys) {
  const provider = new Provider(issuer, configuration(keys));
  provider.on("server_error", (_ctx, error) => console.error("oidc-provider server_error:", error));
  return { provider, handle: provider.callback() };
}

const stats = { jwks_requests: 0, discovery_requests: 0, token_requests: 0, introspection_requests: 0 };
let jwksDown = false;
let current;
let issuer;

function count(method, path) {
  if (path === "/jwks") stats.jwks_requests += 1;
  else if (path.startsWith("/.well-known/")) stats.discovery_requests += 1;
  else if (method === "POST" && path === "/token") stats.token_requests += 1;
  else if (method === "POST" && path === "/token/introspection") stats.introspection_requests += 1;
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function control(req, res, path) {
  if (req.method === "GET" && path === "/_test/stats") return reply(res, 200, stats);
  if (req.method === "POST" && path === "/_test/keys") {
    const keys = readKeys(await readBody(req));
    current = makeProvider(issuer, keys);
    return reply(res, 200, { kids: keys.map((key) => key.kid) });
  }
  if (req.method === "POST" && path === "/_test/jwks") {
    jwksDown = JSON.parse(await readBody(req)).down === true;
    return reply(res, 200, { down: jwksDown });
  }
  return reply(res, 404, { error: "not_found" });
}

async function route(req, res) {
  const path = new URL(req.url, "http://127.0.0.1").pathname;
  if (path.startsWith("/_test/")) {
    try {
      return await control(req, res, path);
    } catch (error) {
      return reply(res, 400, { error: "bad_request", error_description: String(error?.message ?? error) });
    }
  }
  count(req.method, path);
  if (jwksDown && path === "/jwks") return reply(res, 503, { error: "temporarily_unavailable" });
  return current.handle(req, res);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) reply(res, 500, { error: "server_error" });
  });
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

const keys = readKeys(readFileSync(process.env.AS_KEYS_FILE, "utf8"));
server.listen(Number(process.env.AS_PORT || 0), "127.0.0.1", () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  current = makeProvider(issuer, keys);
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
