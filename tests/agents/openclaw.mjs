// kling-batch's MCP server in OpenClaw 2026.9.6, driven through OpenClaw's own MCP client code (no
// LLM): `createBundleMcpToolRuntime` and each tool's `execute`, what its agent loop calls, with the
// README's configuration written to `~/.openclaw/openclaw.json` (HOME is the test's own). The
// model's view of a result is its text blocks, as OpenClaw builds them; whether a call needs the
// human's approval is OpenClaw's own rule on the tool's annotations.
//
//     node openclaw.mjs <openclaw package dir> <stdio|http> <work> <simulator url> <api key> <kling-batch> [<mcp url>]
import { readFileSync, writeFileSync, mkdirSync, rmSync, cpSync, readdirSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";

const [OC, MODE, WORK, SIM, KEY, BIN, MCP_URL] = process.argv.slice(2);
const RUNS = path.join(WORK, `runs-openclaw-${MODE}`);
const HOME = path.join(WORK, `openclaw-${MODE}`);
const failures = [];
const seen = [];

function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} openclaw ${MODE}: ${what}`);
  if (!ok) failures.push(what);
}

async function stats() {
  const r = await fetch(SIM + "/__sim/stats", { headers: { Authorization: "Bearer " + KEY } });
  return r.json();
}

function readmeBlock(name) {
  const text = readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "README.md"), "utf8");
  const m = text.match(new RegExp(`<!-- config: ${name} -->\\s*\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``));
  if (!m) throw new Error(`README.md has no config block ${name}`);
  return m[1];
}

// A module of OpenClaw's bundle by the name it was built from (the file name carries a hash).
async function bundled(prefix) {
  const file = readdirSync(path.join(OC, "dist")).find((f) => f.startsWith(prefix + "-") && f.endsWith(".mjs"));
  if (!file) throw new Error(`no ${prefix} in OpenClaw's dist`);
  return import(path.join(OC, "dist", file));
}

rmSync(HOME, { recursive: true, force: true });
mkdirSync(path.join(HOME, ".openclaw", "skills"), { recursive: true });
mkdirSync(RUNS, { recursive: true });
let config;
if (MODE === "stdio") {
  config = JSON.parse(readmeBlock("openclaw-stdio").replace("/home/me/kling-runs", RUNS).replace('"sk-..."', JSON.stringify(KEY)));
  config.mcp.servers["kling-batch"].env.RUNAPI_BASE_URL = SIM;
} else {
  config = JSON.parse(readmeBlock("openclaw-http").replace("http://127.0.0.1:8800/mcp", MCP_URL));
}
writeFileSync(path.join(HOME, ".openclaw", "openclaw.json"), JSON.stringify(config, null, 2));
cpSync(path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "skills", "kling-batch"), path.join(HOME, ".openclaw", "skills", "kling-batch"), { recursive: true });
process.env.HOME = HOME;
delete process.env.RUNAPI_API_KEY;

// The skill as OpenClaw judges it: kling-batch on the PATH, no key in OpenClaw's own environment.
const info = JSON.parse(execFileSync(process.execPath, [path.join(OC, "openclaw.mjs"), "skills", "info", "kling-batch", "--json"], { cwd: WORK, env: { ...process.env, HOME }, encoding: "utf8" }));
check(info.eligible === true && info.modelVisible === true, `the skill is eligible and visible to the model (eligible ${info.eligible}, visible ${info.modelVisible}, missing ${JSON.stringify(info.missing)})`);

const { createBundleMcpToolRuntime } = await import(path.join(OC, "dist", "agents", "agent-bundle-mcp-materialize.js"));
const { r: toolMeta } = await bundled("tool-metadata");
const { r: requiresApproval } = await bundled("mcp-codex-tool-approval");
const cfg = JSON.parse(readFileSync(path.join(HOME, ".openclaw", "openclaw.json"), "utf8"));
const runtime = await createBundleMcpToolRuntime({ cfg, workspaceDir: WORK });
const tools = Object.fromEntries(runtime.tools.filter((t) => t.name.startsWith("kling-batch__")).map((t) => [t.name.slice("kling-batch__".length), t]));
check(Object.keys(tools).length === 8, `OpenClaw lists the eight tools: ${Object.keys(tools).sort()}`);
const asks = Object.entries(tools).filter(([, t]) => requiresApproval({ annotations: toolMeta(t)?.mcp?.codexApproval?.annotations })).map(([n]) => n).sort();
check(JSON.stringify(asks) === JSON.stringify(["resume_sweep", "start_sweep"]), `only the two tools that spend need the human's approval in a prompting posture: ${asks}`);

let calls = 0;
async function tool(name, input) {
  const result = await tools[name].execute(`call-${++calls}`, input);
  const text = result.content.map((c) => c.text ?? "").join("\n");
  seen.push([name, text]);
  return result.details?.structuredContent ?? {};
}

const small = `name: openclaw-${MODE}\ndefaults: { model: kling-3.0, duration_seconds: 5 }\nprompts: ["a lake", "a river"]\nmatrix: { aspect_ratio: ["16:9", "9:16"] }\n`;
for (let i = 0; i < 5; i++) {
  const r = await tool("start_sweep", { manifest_yaml: small, max_spend_usd: 1, approval: `forged-${i}` });
  check(r.refused === true && r.error === "not_approved", `refusal ${i + 1} is an answer the model can act on (${r.error})`);
}
const plan = await tool("plan_sweep", { manifest_yaml: small });
check(typeof plan.approval === "string", `after five refusals a plan still works (${plan.jobs} jobs)`);

async function follow(sid) {
  const deadline = Date.now() + 180_000;
  let status = {};
  while (Date.now() < deadline) {
    status = await tool("sweep_status", { sweep_id: sid, wait_s: 20 });
    if (status.state !== "running") break;
  }
  return status;
}

const started = await tool("start_sweep", { manifest_yaml: small, max_spend_usd: plan.estimate_usd, approval: plan.approval });
check(["running", "finished"].includes(started.state), `an approved start below --confirm-above starts (${started.state} ${started.error ?? ""})`);
const status = await follow(started.sweep_id);
check(status.state === "finished" && status.completed === 4, `sweep_status with wait_s follows it to the end (${status.state}, ${status.completed})`);
const results = await tool("sweep_results", { sweep_id: started.sweep_id });
check(results.rows?.length === 4 && results.rows.every((r) => r.status === "completed" && existsSync(r.video_path)), `sweep_results lists the videos (${results.rows?.length})`);

if (MODE === "stdio") {
  // Above the README's --confirm-above 10, OpenClaw (which cannot ask its human) leaves it waiting.
  const big = `name: openclaw-big\ndefaults: { model: kling-3.0, duration_seconds: 5 }\nprompts: [${Array.from({ length: 16 }, (_, i) => `"big ${i}"`).join(", ")}]\n`;
  const bigPlan = await tool("plan_sweep", { manifest_yaml: big });
  const before = (await stats()).tasks_created;
  const waiting = await tool("start_sweep", { manifest_yaml: big, max_spend_usd: bigPlan.estimate_usd, approval: bigPlan.approval });
  check(waiting.state === "awaiting_human" && (await stats()).tasks_created === before, `a sweep above --confirm-above waits for the human (${waiting.state}, $${bigPlan.estimate_usd})`);
  const confirmed = execFileSync(BIN, ["mcp", "confirm", waiting.sweep_id, "--runs-dir", RUNS, "--yes"], { env: { ...process.env, RUNAPI_API_KEY: KEY, RUNAPI_BASE_URL: SIM }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const end = await follow(waiting.sweep_id);
  check(end.state === "finished" && end.completed === 16, `the human's kling-batch mcp confirm starts it, and it finishes (${end.state}, ${end.completed})`);
}

const listed = await tool("list_sweeps", {});
check(listed.sweeps?.some((s) => s.sweep_id === started.sweep_id), "list_sweeps shows it");
const over = seen.filter(([, t]) => t.length >= 8000).map(([n, t]) => `${n} ${t.length}`);
check(over.length === 0, `every answer as OpenClaw hands it to the model is under 8,000 characters (${seen.length}; over: ${over})`);
check(!seen.some(([, t]) => t.includes(KEY)), "the key is in no answer");
const st = await stats();
const spent = listed.sweeps.reduce((a, s) => a + s.spent_usd, 0);
const twice = Object.entries(st.creates_per_idempotency_key).filter(([, n]) => n > 1).concat(Object.entries(st.billed_per_client_request_id).filter(([, n]) => n > 1));
check(twice.length === 0, `nothing created or billed twice (${twice.slice(0, 3)})`);
check(Math.abs(spent - st.billed_usd) < 1e-6, `the spend reported ($${spent.toFixed(2)}) is what the simulator billed ($${st.billed_usd.toFixed(2)})`);
await runtime.dispose();
console.log(`${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
