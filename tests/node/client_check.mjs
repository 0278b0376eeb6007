// The official TypeScript SDK client (@modelcontextprotocol/sdk: Client + StreamableHTTPClientTransport)
// against a running pgmcp-http, the way MCP hosts embed it. Prints one JSON report on stdout for
// tests/test_interop_typescript.py to check; exits 1 (still printing the report) when a step throws.
//
//   node client_check.mjs URL [--calls N]     every tool, N calls on one session, resources, prompts
//   node client_check.mjs URL --token TOKEN   AUTH_TOKENS: refused without / with a wrong token, served with it
//
// Every request goes on a fresh TCP connection (Connection: close), so gunicorn's workers take
// turns serving the one session. The client checks each result against the SDK's schemas, and
// the structuredContent of every tool call against that tool's outputSchema (after listTools).

import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: { calls: { type: "string", default: "20" }, token: { type: "string" } },
});
const url = new URL(positionals[0]);

// Arguments valid against the sample database (scripts/sample-data.sql).
const TOOL_ARGUMENTS = {
  query: { sql: "SELECT id, name, email FROM users WHERE id = $1", params: [3] },
  describe_table: { table_name: "orders" },
  list_tables: { schema_name: "public" },
  analyze_query: { sql: "SELECT * FROM orders WHERE user_id = $1", params: [7] },
  database_health: { sections: ["connections", "cache"] },
};

function freshConnectionFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("connection", "close");
  return fetch(input, { ...init, headers });
}

async function connect(token) {
  const client = new Client({ name: "pgmcp-http-client-check", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(url, {
    fetch: freshConnectionFetch,
    requestInit: token === undefined ? undefined : { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

function describeError(error) {
  return { name: error?.constructor?.name ?? typeof error, code: error?.code ?? null, message: String(error?.message ?? error) };
}

async function toolCalls(client) {
  const listed = await client.listTools();
  const tools = listed.tools.map((tool) => ({
    name: tool.name,
    hasOutputSchema: Boolean(tool.outputSchema),
    readOnlyHint: tool.annotations?.readOnlyHint ?? null,
    // listTools compiled a validator per outputSchema; callTool applies it to structuredContent.
    validator: typeof client.getToolOutputValidator(tool.name) === "function",
  }));
  const calls = {};
  for (const tool of listed.tools) {
    const args = TOOL_ARGUMENTS[tool.name];
    if (args === undefined) {
      calls[tool.name] = { skipped: "no sample arguments for this tool" };
      continue;
    }
    const result = await client.callTool({ name: tool.name, arguments: args });
    const text = result.content?.[0]?.type === "text" ? result.content[0].text : null;
    calls[tool.name] = {
      isError: result.isError ?? false,
      contentTypes: (result.content ?? []).map((item) => item.type),
      structuredContent: result.structuredContent ?? null,
      textMatchesStructured: text !== null && JSON.stringify(JSON.parse(text)) === JSON.stringify(result.structuredContent),
    };
  }
  return { tools, calls };
}

async function oneSession(client, transport, count) {
  const sessionId = transport.sessionId;
  const answers = [];
  for (let i = 0; i < count; i += 1) {
    const result = await client.callTool({ name: "query", arguments: { sql: "SELECT $1::int * 2 AS doubled", params: [i] } });
    answers.push(result.isError ? `error: ${result.content?.[0]?.text}` : result.structuredContent.rows[0].doubled);
  }
  return { sessionId: sessionId ?? null, sameSessionAfter: transport.sessionId === sessionId, calls: count, answers };
}

async function allPages(list, key) {
  const items = [];
  let cursor;
  do {
    const page = await list(cursor === undefined ? {} : { cursor });
    items.push(...page[key]);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

async function resources(client) {
  const listed = await allPages((params) => client.listResources(params), "resources");
  const templates = await allPages((params) => client.listResourceTemplates(params), "resourceTemplates");
  const reads = {};
  const functionUri = listed.map((resource) => resource.uri).find((uri) => uri.startsWith("postgres://function/"));
  for (const uri of ["postgres://table/public/users", "postgres://schema/public", functionUri].filter(Boolean)) {
    const read = await client.readResource({ uri });
    const content = read.contents[0];
    reads[uri] = { uri: content.uri, mimeType: content.mimeType, document: JSON.parse(content.text) };
  }
  let unknown = null;
  try {
    await client.readResource({ uri: "postgres://table/public/no_such_table" });
  } catch (error) {
    unknown = describeError(error);
  }
  return { uris: listed.map((resource) => resource.uri), templates: templates.map((t) => t.uriTemplate), reads, unknown };
}

async function promptsAndCompletions(client) {
  const capabilities = client.getServerCapabilities() ?? {};
  const report = { prompts: null, prompt: null, completion: null };
  if (capabilities.prompts) {
    report.prompts = (await client.listPrompts()).prompts.map((prompt) => ({
      name: prompt.name,
      arguments: (prompt.arguments ?? []).map((argument) => argument.name),
    }));
    const got = await client.getPrompt({ name: "explain_slow_query", arguments: { sql: "SELECT * FROM orders WHERE user_id = 7" } });
    report.prompt = { messages: got.messages.length, roles: got.messages.map((m) => m.role), text: got.messages.map((m) => m.content?.text ?? "").join("\n") };
  }
  if (capabilities.completions) {
    const completed = await client.complete({
      ref: { type: "ref/resource", uri: "postgres://table/{schema}/{table}" },
      argument: { name: "table", value: "ORD" },
      context: { arguments: { schema: "public" } },
    });
    report.completion = completed.completion;
  }
  return report;
}

async function fullCheck(report) {
  const { client, transport } = await connect(undefined);
  report.protocolVersion = transport.protocolVersion ?? null;
  report.serverInfo = client.getServerVersion() ?? null;
  report.capabilities = client.getServerCapabilities() ?? null;
  Object.assign(report, await toolCalls(client));
  report.session = await oneSession(client, transport, Number(options.calls));
  report.resources = await resources(client);
  Object.assign(report, await promptsAndCompletions(client));
  report.ping = await client.ping();
  await client.close();
}

async function authCheck(report) {
  for (const [label, token] of [["none", undefined], ["wrong", `${options.token}x`]]) {
    try {
      const { client } = await connect(token);
      report[label] = { connected: true };
      await client.close();
    } catch (error) {
      report[label] = { connected: false, error: describeError(error) };
    }
  }
  const { client, transport } = await connect(options.token);
  const listed = await client.listTools();
  const result = await client.callTool({ name: "query", arguments: { sql: "SELECT count(*) AS n FROM orders" } });
  report.right = {
    connected: true,
    sessionId: transport.sessionId ?? null,
    tools: listed.tools.map((tool) => tool.name),
    rows: result.structuredContent?.rows ?? null,
    isError: result.isError ?? false,
  };
  await client.close();
}

const report = { url: url.href, mode: options.token === undefined ? "full" : "auth" };
let exitCode = 0;
try {
  await (options.token === undefined ? fullCheck(report) : authCheck(report));
} catch (error) {
  report.error = { ...describeError(error), stack: String(error?.stack ?? "") };
  exitCode = 1;
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = exitCode;
