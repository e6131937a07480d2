// The companion page in a real browser: pairing, live approvals with their codes, the code
// confirming the operation through Alexa, deny, roll-over, expiry, bad codes, revocation and
// reconnection. Screenshots land in build/screenshots.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Voxgate, browser, screenshot, speech } from "./harness.mjs";

let chrome;
before(async () => { chrome = await browser(); });
after(async () => { await chrome?.close(); });

const PHONE = { width: 360, height: 780 };
const DESKTOP = { width: 1280, height: 800 };

async function pairedPage(v, viewport = PHONE) {
  const context = await chrome.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(`${v.base}/app#code=${v.pairingCode()}`);
  await page.getByText("Live").waitFor();
  assert.equal(new URL(page.url()).hash, "", "the pairing code leaves the address bar");
  return page;
}

const codeOf = async (page) => (await page.locator(".code").first().textContent()).replace(/\s/g, "");

test("a budget approval shows its amount and what it replaces", async () => {
  const v = await Voxgate.start();
  try {
    const phone = await pairedPage(v);
    await phone.getByText("Nothing is waiting").waitFor();
    const held = await v.alexa("SetBudgetIntent", { amount: "500" });
    assert.equal(speech(held), "I'll create a monthly budget of 500 dollars for prod, once you say the code from your voxgate app.");
    const card = phone.locator(".card");
    await card.waitFor();
    assert.equal(await card.locator(".summary").textContent(), "Create a monthly budget of 500 dollars for prod");
    assert.equal(await card.locator(".amount").textContent(), "500 USD a month");
    assert.equal(await card.locator(".now").textContent(), "no budget");
    await screenshot(phone, "budget-approval-phone");
    const code = await codeOf(phone);
    const done = await v.alexa("VerifyCodeIntent", { code: String(Number(code)) }, held.sessionAttributes);
    assert.equal(speech(done), "Done. The monthly budget of prod is now 500 dollars.");
    await card.waitFor({ state: "detached" });
  } finally {
    await v.stop();
  }
});

test("pair, see the approval, say its code, see it done", async () => {
  const v = await Voxgate.start();
  try {
    const phone = await pairedPage(v);
    const desktop = await pairedPage(v, DESKTOP);
    await phone.getByText("Nothing is waiting").waitFor();

    const held = await v.alexa("StopInstanceIntent", { instance: "web one" });
    assert.equal(speech(held), "I'll stop web-1 in prod, Ireland, once you say the code from your voxgate app.");
    const card = phone.locator(".card");
    await card.waitFor();
    const summary = await card.locator(".summary").textContent();
    assert.equal(summary, "Stop web-1 in prod, Ireland", "the page shows what Alexa said");
    assert.equal(await card.locator(".instance").textContent(), `web-1 (${v.instance})`);
    assert.equal(await card.locator(".account").textContent(), "prod");
    assert.equal(await card.locator(".region").textContent(), "eu-west-1");
    assert.match(await card.locator(".code").textContent(), /^\d{3} \d{3}$/, "grouped digits");
    assert.match(await card.locator(".next").textContent(), /^New code in \d+ s$/);
    assert.match(await card.locator(".expires").textContent(), /^Expires in [45]:\d\d$/);
    await phone.waitForFunction(() => document.getElementById("announce").textContent.startsWith("New approval"));
    await screenshot(phone, "approval-phone");
    await desktop.locator(".card").waitFor();
    await screenshot(desktop, "approval-desktop");
    // The device token survives a reload.
    await phone.reload();
    await phone.getByText("Live").waitFor();
    await phone.locator(".card").waitFor();
    // Dark theme, for the reviewer's eyes.
    const dark = await (await chrome.newContext({ viewport: DESKTOP, colorScheme: "dark" })).newPage();
    await dark.goto(`${v.base}/app#code=${v.pairingCode()}`);
    await dark.locator(".card").waitFor();
    await screenshot(dark, "approval-desktop-dark");

    const code = await codeOf(phone);
    const done = await v.alexa("VerifyCodeIntent", { code: String(Number(code)) }, held.sessionAttributes);
    assert.equal(speech(done), "Stopping web-1 now.");
    assert.match(v.instanceState(), /^(stopping|stopped)$/);
    await phone.locator('.outcomes li[data-kind="executed"]').waitFor();
    assert.match(await phone.locator(".outcomes").textContent(), /Done: Stop web-1 in prod, Ireland/);
    await phone.locator(".card").waitFor({ state: "detached" });
    await screenshot(phone, "outcome-phone");

    // Unpair forgets the token here and revokes it on the server: back to pairing, also
    // after a reload, and the old token no longer works.
    const oldToken = await phone.evaluate(() => localStorage.getItem("voxgate.deviceToken"));
    await phone.getByRole("button", { name: "Unpair this device" }).click();
    await phone.getByLabel("Pairing code").waitFor();
    assert.equal(await phone.evaluate(() => localStorage.getItem("voxgate.deviceToken")), null);
    const after = await fetch(`${v.base}/api/v1/companion/challenges`, { headers: { Authorization: `Bearer ${oldToken}` } });
    assert.equal(after.status, 401);
    await phone.reload();
    await phone.getByLabel("Pairing code").waitFor();
  } finally {
    await v.stop();
  }
});

test("deny from the page: Alexa says it was denied and nothing ran", async () => {
  const v = await Voxgate.start();
  try {
    const page = await pairedPage(v);
    const held = await v.alexa("StopInstanceIntent", { instance: "web-1" });
    await page.locator(".card").waitFor();
    const code = await codeOf(page);
    await page.getByRole("button", { name: "Deny" }).click();
    await page.getByText("Deny this operation?").waitFor();
    await screenshot(page, "deny-confirm-phone");
    await page.getByRole("button", { name: "Yes, deny" }).click();
    await page.locator('.outcomes li[data-kind="denied"]').waitFor();
    const answer = await v.alexa("VerifyCodeIntent", { code: String(Number(code)) }, held.sessionAttributes);
    assert.equal(speech(answer), "That request was denied in your voxgate app, so nothing ran.");
    assert.equal(v.instanceState(), "running");
  } finally {
    await v.stop();
  }
});

test("a pairing link never silently replaces an existing pairing", async () => {
  const v = await Voxgate.start();
  try {
    const page = await pairedPage(v);
    await page.goto(`${v.base}/app#code=${v.pairingCode()}`);
    await page.getByText("This device is already paired").waitFor();
    await page.getByRole("button", { name: "Keep the current pairing" }).click();
    await page.getByText("Live").waitFor();
    // A bad code from a link leaves an unpaired page showing why.
    const fresh = await (await chrome.newContext({ viewport: PHONE })).newPage();
    await fresh.goto(`${v.base}/app#code=ZZZZ-ZZZZ`);
    await fresh.getByText("That pairing code is unknown, was replaced by a newer one, or is already used or expired").waitFor();
  } finally {
    await v.stop();
  }
});

test("a bad pairing code is explained", async () => {
  const v = await Voxgate.start();
  try {
    const context = await chrome.newContext({ viewport: PHONE });
    const page = await context.newPage();
    await page.goto(`${v.base}/app`);
    await page.getByLabel("Pairing code").fill("ZZZZ-ZZZZ");
    await page.getByRole("button", { name: "Pair" }).click();
    await page.getByText("That pairing code is unknown, was replaced by a newer one, or is already used or expired").waitFor();
    await screenshot(page, "bad-pairing-code-phone");
  } finally {
    await v.stop();
  }
});

test("a revoked device returns to pairing with an explanation", async () => {
  const v = await Voxgate.start();
  try {
    const page = await pairedPage(v);
    await v.alexa("StopInstanceIntent", { instance: "web-1" });
    await page.locator(".card").waitFor();
    const devices = JSON.parse(v.cli(["device", "list", "--json"]));
    v.cli(["device", "revoke", devices[0].id]);
    // The next change ends the revoked stream; the page learns it on reconnecting.
    await v.alexa("AMAZON.CancelIntent");
    await page.getByText("This device was unpaired").waitFor({ timeout: 20000 });
    assert.equal(await page.locator(".card").count(), 0, "no code is left in the page, not even hidden");
    assert.equal(await page.evaluate(() => localStorage.getItem("voxgate.deviceToken")), null);
  } finally {
    await v.stop();
  }
});

test("reconnects after the server restarts, and says so", async () => {
  const v = await Voxgate.start();
  try {
    const page = await pairedPage(v);
    await v.stop();
    await page.getByText("Connection lost, reconnecting").waitFor();
    await screenshot(page, "reconnecting-phone");
    await v.serve();
    await v.alexa("StopInstanceIntent", { instance: "web-1" });
    await page.getByText("Live").waitFor({ timeout: 20000 });
    await page.locator(".card").waitFor({ timeout: 20000 });
  } finally {
    await v.stop();
  }
});

test("the code rolls over without a reload, and an expired approval says so", async () => {
  const v = await Voxgate.start({ challengeTtl: 60 });
  try {
    const page = await pairedPage(v);
    await v.alexa("RebootInstanceIntent", { instance: "web-1" });
    await page.locator(".card").waitFor();
    const first = await codeOf(page);
    await page.waitForFunction((old) => document.querySelector(".code").textContent.replace(/\s/g, "") !== old, first, { timeout: 40000 });
    const second = await codeOf(page);
    assert.notEqual(second, first);
    assert.match(second, /^\d{6}$/);
    // Expiry after 60 s; the service sweeps every 5 s.
    await page.locator('.outcomes li[data-kind="expired"]').waitFor({ timeout: 75000 });
    await page.locator(".card").waitFor({ state: "detached" });
    assert.match(await page.locator(".outcomes").textContent(), /Expired, nothing ran: Reboot web-1 in prod, Ireland/);
    await screenshot(page, "expired-phone");
  } finally {
    await v.stop();
  }
});
