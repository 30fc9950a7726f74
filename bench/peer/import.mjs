// The same import as bench/import.lua, done with the official Microsoft Graph JS client
// (@microsoft/microsoft-graph-client 3.0.7), for the comparison in `make bench`.
//   node import.mjs --base https://localhost:P --tenant T --client-id C --secret S
//                   --provider P --file rows.jsonl --concurrency N [--batch 20] [--limit ROWS]
// TLS: the emulator's CA comes from NODE_EXTRA_CA_CERTS. Prints one JSON line of figures.
import { readFileSync } from "node:fs";
import { Client } from "@microsoft/microsoft-graph-client";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const base = args.base;
const concurrency = parseInt(args.concurrency || "16", 10);
const batch = parseInt(args.batch || "1", 10);

async function token() {
  const body = new URLSearchParams({
    grant_type: "client_credentials", client_id: args["client-id"], client_secret: args.secret,
    scope: "https://graph.microsoft.com/.default",
  });
  const r = await fetch(`${base}/${args.tenant}/oauth2/v2.0/token`, { method: "POST", body });
  if (!r.ok) throw new Error(`token: HTTP ${r.status}`);
  return (await r.json()).access_token;
}

const tok = await token();
const client = Client.initWithMiddleware({
  authProvider: { getAccessToken: async () => tok },
  baseUrl: base,
  defaultVersion: "v1.0",
  customHosts: new Set([new URL(base).hostname]),
});

const rows = readFileSync(args.file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l))
  .slice(0, args.limit ? parseInt(args.limit, 10) : undefined);
const path = `/employeeExperience/learningProviders/${args.provider}/learningCourseActivities`;

let ok = 0, failed = 0, next = 0;
const started = process.hrtime.bigint();

async function single() {
  while (next < rows.length) {
    const row = rows[next++];
    try { await client.api(path).post(row); ok++; } catch (e) { failed++; }
  }
}

async function batched() {
  while (next < rows.length) {
    const chunk = rows.slice(next, next + batch);
    next += chunk.length;
    const requests = chunk.map((body, i) => ({
      id: String(i + 1), method: "POST", url: path, headers: { "content-type": "application/json" }, body,
    }));
    try {
      const res = await client.api("/$batch").post({ requests });
      for (const r of res.responses) { if (r.status >= 200 && r.status < 300) ok++; else failed++; }
    } catch (e) { failed += chunk.length; }
  }
}

const workers = [];
for (let i = 0; i < concurrency; i++) workers.push(batch > 1 ? batched() : single());
await Promise.all(workers);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
// user+sys of this process, from /proc/self/stat (fields 14 and 15, clock ticks of 1/100 s)
const stat = readFileSync("/proc/self/stat", "utf8").replace(/^.*\) /, "").split(" ");
const cpu_s = (parseInt(stat[11], 10) + parseInt(stat[12], 10)) / 100;
console.log(JSON.stringify({ client: "microsoft-graph-client", rows: rows.length, ok, failed, batch, concurrency,
  seconds, rows_per_s: rows.length / seconds, cpu_s }));
