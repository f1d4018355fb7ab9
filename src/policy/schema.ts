// The built-in Custos policy schema. Keep identical to schema.cedarschema (a test checks).
export const builtInSchema = `// Custos policy schema: the entities, actions and request context Custos builds for
// every decision. docs/policies.md explains each part; schema.ts holds the same text.

// An accountable human (or team) that answers for agents. Identified by email.
entity Owner;

// An agent: the principal of every request. An agent is in its owner, so
// principal in Owner::"alice@example.com" matches all of Alice's agents.
entity Agent in [Owner] {
  name: String,
  owner: Owner,
  environment: String,
  purpose: String,
};

// The task an agent works on (from a task token). Identified by task id.
entity Task {
  purpose: String,
};

// An upstream MCP server, identified by its name in custos.yaml.
entity Server;

// What an agent acts on. Ids are "<server>/<name>"; each is in its server, so
// resource in Server::"files" matches everything the server offers.
entity Tool in [Server] {
  name: String,
  server: String,
};
entity Resource in [Server] {
  name: String,
  server: String,
};
entity Prompt in [Server] {
  name: String,
  server: String,
};

// MCP tool annotations, with the MCP defaults filled in for missing hints
// (see docs/policies.md: a tool that says nothing counts as not read-only,
// destructive, not idempotent and open-world).
type Annotations = {
  readOnlyHint: Bool,
  destructiveHint: Bool,
  idempotentHint: Bool,
  openWorldHint: Bool,
};

// The time of the request, UTC. weekday: 0 = Sunday ... 6 = Saturday.
type Time = {
  hour: Long,
  minute: Long,
  weekday: Long,
  epochSeconds: Long,
};

// Tool arguments policies may test. Cedar records are closed, so only the names
// declared here reach policies; an argument whose JSON value does not fit the
// declared type makes the decision an error, hence a deny. Add names by shipping a
// schema.cedarschema next to your policies.
type Arguments = {
  path?: String,
  paths?: Set<String>,
  source?: String,
  destination?: String,
  url?: String,
  uri?: String,
  command?: String,
  // http_request: the HTTP method (upper case) of a /proxy call; path is its path.
  method?: String,
  query?: String,
  pattern?: String,
};

type RequestContext = {
  arguments: Arguments,
  // The names of all top-level arguments, declared or not.
  argumentNames: Set<String>,
  task?: Task,
  time: Time,
  annotations: Annotations,
};

action call_tool appliesTo {
  principal: [Agent],
  resource: [Tool],
  context: RequestContext,
};

// Enumerate a server's tools at all; which tools show is decided per tool by
// whether some call_tool could be allowed.
action list_tools appliesTo {
  principal: [Agent],
  resource: [Server],
  context: RequestContext,
};

action read_resource appliesTo {
  principal: [Agent],
  resource: [Resource],
  context: RequestContext,
};

action get_prompt appliesTo {
  principal: [Agent],
  resource: [Prompt],
  context: RequestContext,
};

// A plain HTTP call through /proxy/<api>/<path>. The resource is
// Resource::"<api>/<METHOD> <path>" in Server::"<api>"; context.arguments
// carries method and path (without the query string).
action http_request appliesTo {
  principal: [Agent],
  resource: [Resource],
  context: RequestContext,
};
`;
