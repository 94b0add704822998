// The public page in headless Chromium (Debian's, driven by playwright-core),
// against a local stack served under a REST API stage. A person's view: it
// picks, fills, submits and reads what the page says, on a phone-sized
// screen, and a screenshot is taken of each state.
//
// Usage: node tests/browser/page.cjs <page URL> <screenshot folder> [<page URL of a stack whose queue is down>]
// (NODE_PATH=tools/node/node_modules; CHROMIUM overrides /usr/bin/chromium).
// Exits 0 when every step passed; otherwise prints the step that failed.
"use strict";
const { chromium } = require("playwright-core");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const [pageUrl, shots, unavailableUrl] = process.argv.slice(2);
if (!pageUrl || !shots) {
  console.error("usage: node tests/browser/page.cjs <page URL> <screenshot folder>");
  process.exit(2);
}
const origins = new Set([pageUrl, unavailableUrl].filter(Boolean).map((u) => new URL(u).origin));
const origin = new URL(pageUrl).origin;
// A run takes a few seconds on the local stack; the page polls every few.
const PATIENCE_MS = 60000;

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const problems = [];
  try {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 1,
      isMobile: true,
      hasTouch: true,
      locale: "en-US",
      timezoneId: "UTC",
    });
    const page = await context.newPage();
    // Self-contained: nothing but this origin; no script error, no CSP violation.
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (!origins.has(url.origin)) problems.push(`request to another origin: ${request.url()}`);
    });
    page.on("console", (message) => {
      // The 400, 429 and 503 answers are steps of this test; anything else is not.
      const expected = /Failed to load resource: .* status of (400|429|503)/.test(message.text());
      if (message.type() === "error" && !expected) problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    const shot = async (name) => {
      await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
      console.log(`screenshot ${name}.png`);
    };
    const outcome = page.locator("#outcome");
    const status = page.getByRole("status");
    const step = (text) => console.log(`step: ${text}`);

    step("the page loads under the stage and lists the pipelines");
    const loaded = [];
    const collect = (r) => loaded.push(r);
    page.on("response", collect);
    const response = await page.goto(pageUrl);
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
    const pipeline = page.getByLabel("Pipeline");
    await pipeline.waitFor();
    await page.waitForFunction(() => !document.getElementById("pipeline").disabled);
    assert.deepEqual(await pipeline.locator("option").allTextContents(), ["app", "broken"]);
    assert.equal(await pipeline.inputValue(), "app");
    await page.getByText("Demo app: its runs succeed").waitFor();
    page.off("response", collect);
    // What a first visit costs: the page and its files (the catalog apart).
    let pageBytes = 0;
    const files = [];
    for (const r of loaded) {
      const name = new URL(r.url()).pathname;
      const bytes = (await r.body()).length;
      if (name.endsWith("/pipelines")) continue;
      pageBytes += bytes;
      files.push(`${name} ${bytes} B`);
    }
    console.log(`first visit: ${files.length} requests, ${pageBytes} bytes (${files.join(", ")})`);
    assert.ok(pageBytes < 30 * 1024, `the page weighs ${pageBytes} bytes`);

    step("each input is a labelled control of its type");
    const environment = page.getByLabel("environment");
    assert.equal(await environment.evaluate((e) => e.tagName), "SELECT");
    assert.deepEqual(await environment.locator("option").allTextContents(), ["staging", "production"]);
    const dryRun = page.getByLabel("dry_run");
    assert.equal(await dryRun.getAttribute("type"), "checkbox");
    const replicas = page.getByLabel("replicas");
    assert.equal(await replicas.getAttribute("type"), "number");
    assert.equal(await replicas.getAttribute("min"), "1");
    assert.equal(await replicas.getAttribute("max"), "5");
    const branch = page.getByLabel("branch");
    assert.equal(await branch.getAttribute("type"), "text");
    assert.equal(await branch.getAttribute("maxlength"), "63");
    const submit = page.getByRole("button", { name: "Trigger" });
    assert.equal(await submit.getAttribute("type"), "submit");
    // Every form control has a label.
    const unlabelled = await page.$$eval("form input, form select", (controls) =>
      controls.filter((c) => !c.labels || c.labels.length === 0).map((c) => c.id));
    assert.deepEqual(unlabelled, []);

    step("an invalid input is marked at its field, and nothing is triggered");
    await branch.fill("Not a branch!");
    await replicas.fill("9");
    await submit.click();
    await page.locator("#error-branch").waitFor({ state: "visible" });
    assert.equal(await branch.getAttribute("aria-invalid"), "true");
    assert.equal(await replicas.getAttribute("aria-invalid"), "true");
    assert.match(await page.locator("#error-replicas").textContent(), /5/);
    assert.match(await status.textContent(), /not valid; nothing was triggered/);
    await shot("invalid-input");

    step("a trigger with inputs is accepted, and its run is followed to succeeded with its stages");
    await branch.fill("feature/page");
    await replicas.fill("2");
    await environment.selectOption("production");
    await dryRun.check();
    await submit.click();
    await page.waitForFunction(() => /Accepted/.test(document.getElementById("outcome").textContent));
    assert.equal(await branch.getAttribute("aria-invalid"), null, "the earlier error is cleared");
    assert.match(await outcome.textContent(), /Accepted: app will run\. This address has 1 of 2 triggers left\./);
    await shot("accepted");
    await page.locator("#run-status", { hasText: "Succeeded" }).waitFor({ timeout: PATIENCE_MS });
    await page.waitForFunction(() => document.querySelectorAll("#stages li").length === 3
      && [...document.querySelectorAll("#stages li .state")].every((s) => s.textContent === "succeeded"),
    null, { timeout: PATIENCE_MS });
    assert.deepEqual(
      await page.locator("#stages li").allInnerTexts().then((items) => items.map((t) => t.replace(/\s+/g, " "))),
      ["Source succeeded", "Build succeeded", "Deploy succeeded"],
    );
    const permalink = await page.locator("#permalink").getAttribute("href");
    const id = new URLSearchParams(permalink.split("?")[1]).get("trigger");
    assert.match(id, /^[0-9A-Z]{26}$/);
    assert.match(permalink, /^\/prod\/?\?trigger=/);
    const stored = await (await fetch(`${origin}/prod/triggers/${id}`)).json();
    assert.deepEqual(stored.inputs, { branch: "feature/page", dry_run: true, environment: "production", replicas: 2 });
    await shot("succeeded");
    await page.setViewportSize({ width: 900, height: 1000 });
    await shot("succeeded-desktop");
    await page.setViewportSize({ width: 390, height: 844 });

    step("a failing pipeline is followed to failed, its stages stopping at the failed one");
    await pipeline.selectOption("broken");
    assert.equal(await page.locator("#inputs").isHidden(), true, "broken declares no inputs");
    await submit.click();
    await page.waitForFunction(() => /That was the last trigger/.test(document.getElementById("outcome").textContent));
    await page.locator("#run-status", { hasText: "Failed" }).waitFor({ timeout: PATIENCE_MS });
    await page.waitForFunction(() => document.querySelectorAll("#stages li .state.bad").length === 1, null, { timeout: PATIENCE_MS });
    assert.deepEqual(
      await page.locator("#stages li").allInnerTexts().then((items) => items.map((t) => t.replace(/\s+/g, " "))),
      ["Source succeeded", "Build failed"],
    );
    await shot("failed");

    step("the quota refusal says until when, in words");
    await submit.click();
    await page.waitForFunction(() => /Refused/.test(document.getElementById("outcome").textContent));
    assert.match(await outcome.textContent(),
      /Refused: this address has used all its triggers for now\. You can trigger again in 7 days \(\w{3} \d+, \d{4}, \d+:\d{2}\s?[AP]M\)\./);
    await shot("refused");

    step("the link shows the earlier trigger again after a reload");
    await page.goto(new URL(permalink, origin).href);
    await page.locator("#run-status", { hasText: "Succeeded" }).waitFor({ timeout: PATIENCE_MS });
    assert.equal(await page.locator("#stages li").count(), 3);
    assert.match(await outcome.textContent(), /Following an earlier trigger/);
    assert.match(await page.locator("#run-what").textContent(),
      /^app, requested .* · branch=feature\/page · dry_run=true · environment=production · replicas=2$/);
    await shot("reloaded");

    step("a link can pick the pipeline");
    await page.goto(`${pageUrl}?pipeline=broken`);
    await page.waitForFunction(() => !document.getElementById("pipeline").disabled);
    assert.equal(await pipeline.inputValue(), "broken");
    await page.getByText("Demo pipeline whose runs fail").waitFor();
    await page.goto(`${pageUrl}?pipeline=nope`);
    await page.waitForFunction(() => !document.getElementById("pipeline").disabled);
    assert.equal(await pipeline.inputValue(), "app", "an unknown name falls back to the default");

    step("strings from the API are shown as text, never run as HTML");
    await page.goto(`${pageUrl}?trigger=${"<img src=x onerror=alert(1)>"}`);
    await page.waitForFunction(() => /does not hold a trigger id/.test(document.getElementById("outcome").textContent));
    assert.equal(await page.locator("img").count(), 0);

    if (unavailableUrl) {
      step("when the service cannot queue, the page says so and that no quota was used");
      await page.goto(unavailableUrl);
      await page.waitForFunction(() => !document.getElementById("submit").disabled);
      await submit.click();
      await page.waitForFunction(() => /unavailable/.test(document.getElementById("outcome").textContent),
        null, { timeout: PATIENCE_MS });
      assert.match(await outcome.textContent(),
        /^The service is unavailable right now; no quota was used\. Try again in 5 seconds\.$/);
      await shot("unavailable");
    }

    await context.close();
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], "the page stayed on its origin, without errors");
  console.log("browser test: every step passed");
}

main().catch((error) => {
  console.error(`browser test failed: ${error.stack || error}`);
  process.exit(1);
});
