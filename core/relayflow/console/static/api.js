// Talking to the console's backend (see relayflow/console/__init__.py for the contract):
// the session, /console/api/<Action>, /console/graph and /console/view.

/** An answer that is not a success: the server's code, its one-sentence message, the status. */
export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// The actions each role may call (relayflow.api.auth.ROLE_ACTIONS); the server checks again,
// this only decides which buttons a person sees.
const READ = new Set([
  "DescribeFlow", "ListFlows", "DescribeExecution", "ListExecutions", "GetExecutionHistory",
  "DescribeSchedule", "ListSchedules", "ListFlowVersions", "DescribeFlowAlias", "ListFlowAliases",
  "DescribeRegions", "DescribeMapRun", "CountExecutions", "ListWaitingWork",
]);
const REPORT = new Set(["ReportTaskSucceeded", "ReportTaskFailed"]);

/** Who is signed in: filled by loadSession, emptied by signOut. */
export const session = { signedIn: false, keyless: false, keyId: "", role: "", csrf: "", expires: 0 };

/** Whether the signed-in role may call an action. */
export function can(action) {
  if (!session.signedIn) return false;
  if (session.role === "admin") return true;
  if (session.role === "worker") return REPORT.has(action);
  if (session.role === "reader") return READ.has(action);
  return false;
}

/** Whether the role may read flows and executions (the worker role only reports). */
export function canRead() {
  return can("ListFlows");
}

let onSignedOut = () => {};

/** What to do when the server says the session has ended (401): show the sign-in view. */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

async function answer(response) {
  let doc = null;
  const text = await response.text();
  try {
    doc = text ? JSON.parse(text) : {};
  } catch {
    doc = null;
  }
  if (response.ok && doc !== null) return doc;
  const code = (doc && doc.Code) || `HTTP${response.status}`;
  const message =
    (doc && doc.Message) || `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  const error = new ApiError(code, message, response.status);
  if (response.status === 401 && session.signedIn) {
    Object.assign(session, { signedIn: false, csrf: "" });
    onSignedOut(error);
  }
  throw error;
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    headers["X-Relayflow-CSRF"] = session.csrf;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError("NetworkError", "The server could not be reached; check that it is running.", 0);
  }
  return answer(response);
}

/** Reads the session (GET /console/session). */
export async function loadSession() {
  const doc = await request("GET", "/console/session");
  Object.assign(session, doc);
  return session;
}

/** Signs in with {accessKeyId, accessKeySecret} or {token}. */
export async function signIn(credentials) {
  const doc = await request("POST", "/console/session", credentials);
  Object.assign(session, doc);
  return session;
}

/** Signs out and forgets the session. */
export async function signOut() {
  try {
    await request("POST", "/console/session/end", {});
  } finally {
    Object.assign(session, { signedIn: false, keyId: "", role: "", csrf: "" });
  }
}

/** Runs an action with its API parameters; empty values are left out. */
export function call(action, params) {
  const body = {};
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") body[name] = value;
  }
  return request("POST", `/console/api/${encodeURIComponent(action)}`, body);
}

/**
 * The flow drawn as a graph (GET /console/graph): its current definition, a published
 * version's, or the one an execution runs.
 */
export function graph(flow, version, execution) {
  const query = new URLSearchParams({ flow });
  if (version) query.set("version", String(version));
  if (execution) query.set("execution", String(execution));
  return request("GET", `/console/graph?${query}`);
}

/** One execution as the execution page shows it (GET /console/view). */
export function view(flow, execution) {
  return request("GET", `/console/view?${new URLSearchParams({ flow, execution })}`);
}
