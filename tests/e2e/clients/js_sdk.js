// Calls a Trainyard server with the AWS SDK for JavaScript v3 (npm, installed into .deps/js by
// scripts/install-js-clients.sh). Run by tests/e2e/test_js_sdk.py with /usr/bin/node.
//
// usage: node js_sdk.js CALLS.json
//   CALLS.json: [{"client": "sagemaker"|"logs"|"cloudwatch"|"sns"|"lambda"|"events", "op": "ListTrainingJobs",
//                 "input": {...}, "paginate": false}, ...]
//   In inputs, {"$date": "<ISO 8601>"} becomes a Date and {"$base64": "..."} bytes. With "paginate": true (or an object of
//   paginator settings, e.g. {"pageSize": 2, "stopOnSameToken": true}) the SDK's own paginator
//   (paginate<Op>) follows the tokens and the result is the list of pages.
// Prints one JSON line: per call {"ok": output} or {"error": {name, message, fault, status}}.
// Dates in outputs print as ISO strings.
//
// Endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL, AWS_REGION,
// AWS_PROFILE + AWS_SHARED_CREDENTIALS_FILE), as for any SDK user; TY_JS_MODULES names the
// node_modules folder.
"use strict";
const fs = require("fs");
const path = require("path");

const modules = process.env.TY_JS_MODULES;
const packages = {
  sagemaker: ["@aws-sdk/client-sagemaker", "SageMakerClient"],
  logs: ["@aws-sdk/client-cloudwatch-logs", "CloudWatchLogsClient"],
  cloudwatch: ["@aws-sdk/client-cloudwatch", "CloudWatchClient"],
  sns: ["@aws-sdk/client-sns", "SNSClient"],
  lambda: ["@aws-sdk/client-lambda", "LambdaClient"],
  events: ["@aws-sdk/client-eventbridge", "EventBridgeClient"],
};

function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if (Object.keys(value).length === 1 && typeof value.$date === "string") {
      return new Date(value.$date);
    }
    if (Object.keys(value).length === 1 && typeof value.$base64 === "string") {
      return Uint8Array.from(Buffer.from(value.$base64, "base64"));
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = revive(v);
    return out;
  }
  return value;
}

function strip(output) {
  const { $metadata, ...rest } = output;
  // Blobs (Lambda's Invoke Payload) print as their UTF-8 text.
  for (const [k, v] of Object.entries(rest)) {
    if (v instanceof Uint8Array) rest[k] = Buffer.from(v).toString("utf8");
  }
  return rest;
}

async function call(clients, c) {
  const [pkg, clientName] = packages[c.client];
  const sdk = require(path.join(modules, pkg));
  clients[c.client] = clients[c.client] || new sdk[clientName]({ maxAttempts: 1 });
  const client = clients[c.client];
  const input = revive(c.input || {});
  if (c.paginate) {
    const pages = [];
    const config = { client, ...(typeof c.paginate === "object" ? c.paginate : {}) };
    for await (const page of sdk["paginate" + c.op](config, input)) pages.push(strip(page));
    return pages;
  }
  return strip(await client.send(new sdk[c.op + "Command"](input)));
}

async function main() {
  const calls = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const clients = {};
  const results = [];
  for (const c of calls) {
    try {
      results.push({ ok: await call(clients, c) });
    } catch (e) {
      results.push({
        error: {
          name: e.name,
          message: e.message,
          fault: e.$fault,
          status: e.$metadata ? e.$metadata.httpStatusCode : undefined,
        },
      });
    }
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
