// Test harness for the companion page: a real voxgate (the binary cargo built) on a free
// loopback port, with moto behind it and a scratch SQLite database; Alexa requests are sent
// unsigned (voxgate runs with --insecure-skip-verification, allowed only on loopback); the
// page runs in Debian's Chromium through playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = process.env.VOXGATE_BIN || path.join(process.env.CARGO_TARGET_DIR || "/var/tmp/voxgate-target", "debug", "voxgate");
export const MOTO = process.env.VOXGATE_TEST_MOTO_URL;
const PYTHON = process.env.VOXGATE_TEST_PYTHON || path.join(root, ".venv", "bin", "python");
const CHROMIUM = process.env.VOXGATE_CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = process.env.VOXGATE_SCREENSHOTS || path.join(root, "build", "screenshots");
if (!MOTO) throw new Error("VOXGATE_TEST_MOTO_URL is not set: run ./scripts/test, which starts moto");

const ALICE = "amzn1.ask.account.ALICE";

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const awsEnv = {
  AWS_ENDPOINT_URL: MOTO,
  AWS_ACCESS_KEY_ID: "testing",
  AWS_SECRET_ACCESS_KEY: "testing",
  AWS_REGION: "eu-west-1",
  AWS_EC2_METADATA_DISABLED: "true",
};

/** Runs moto calls in the account through boto3 (moto's own dependency, in .venv). */
function python(account, code) {
  const script = `
import boto3, json, sys
kw = dict(endpoint_url=${JSON.stringify(MOTO)}, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
c = boto3.client("sts", **kw).assume_role(RoleArn="arn:aws:iam::${account}:role/seed", RoleSessionName="seed")["Credentials"]
ec2 = boto3.client("ec2", endpoint_url=kw["endpoint_url"], region_name="eu-west-1", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
${code}
`;
  return execFileSync(PYTHON, ["-c", script], { encoding: "utf8" }).trim();
}

export class Voxgate {
  static async start({ challengeTtl = 300 } = {}) {
    const v = new Voxgate();
    v.dir = mkdtempSync(path.join(tmpdir(), "voxgate-browser-"));
    v.account = String(100000000000 + Math.floor(Math.random() * 899999999999)).slice(0, 12);
    v.challengeTtl = challengeTtl;
    v.instance = python(v.account, `
r = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "voxgate:managed", "Value": "true"}]}])
print(r["Instances"][0]["InstanceId"])`);
    v.cli(["tenant", "add", "acme"]);
    v.cli(["user", "add", "--tenant", "acme", "--name", "alice", "--alexa-user-id", ALICE]);
    v.cli(["account", "link", "--tenant", "acme", "--role-arn", `arn:aws:iam::${v.account}:role/voxgate-access`, "--region", "eu-west-1", "--name", "prod", "--trusted-account-id", "999988887777"]);
    v.port = await freePort();
    v.base = `http://127.0.0.1:${v.port}`;
    await v.serve();
    return v;
  }

  cli(args) {
    return execFileSync(BIN, args, { cwd: this.dir, env: { ...process.env, ...awsEnv, VOXGATE_LOG: "error" }, encoding: "utf8" });
  }

  async serve() {
    this.process = spawn(BIN, ["serve", "--listen", `127.0.0.1:${this.port}`, "--insecure-skip-verification", "--skill-id", "amzn1.ask.skill.browser", "--challenge-ttl", String(this.challengeTtl)], {
      cwd: this.dir,
      env: { ...process.env, ...awsEnv, VOXGATE_LOG: "info" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    await new Promise((resolve, reject) => {
      let seen = "";
      const timer = setTimeout(() => reject(new Error("voxgate did not start: " + seen)), 20000);
      this.process.stderr.on("data", (chunk) => {
        seen += chunk;
        if (seen.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.process.on("exit", (code) => reject(new Error(`voxgate exited (${code}): ${seen}`)));
    });
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.kill("SIGTERM");
    await exited;
  }

  pairingCode() {
    return JSON.parse(this.cli(["pair", "--user", "alice", "--json", "--public-url", this.base])).code;
  }

  instanceState() {
    return python(this.account, `print(ec2.describe_instances(InstanceIds=["${this.instance}"])["Reservations"][0]["Instances"][0]["State"]["Name"])`);
  }

  /** Sends what Alexa sends for `intent`, unsigned; returns the response JSON. */
  async alexa(intent, slots = {}, attributes = {}) {
    const user = { userId: ALICE };
    const body = {
      version: "1.0",
      session: { new: false, sessionId: "amzn1.echo-api.session.browser", application: { applicationId: "amzn1.ask.skill.browser" }, attributes, user },
      context: { System: { application: { applicationId: "amzn1.ask.skill.browser" }, user } },
      request: {
        type: "IntentRequest",
        requestId: "amzn1.echo-api.request." + randomUUID(),
        timestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        locale: "en-US",
        intent: { name: intent, confirmationStatus: "NONE", slots: Object.fromEntries(Object.entries(slots).map(([k, v]) => [k, { name: k, value: v, confirmationStatus: "NONE" }])) },
      },
    };
    const response = await fetch(`${this.base}/alexa`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return response.json();
  }
}

export function speech(response) {
  return response.response.outputSpeech.text;
}

export async function browser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name + ".png"), fullPage: true });
}
