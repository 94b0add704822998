// The public page in headless Chromium (Debian's, driven by playwright-core),
// against a local stack served under a REST API stage. A person's view: it
// picks, fills, submits and reads what the page says, on a phone-sized
// screen, and a screenshot is taken of each state.
//
// Usage: node tests/end_to_end/browser/page.cjs <page URL> <screenshot folder>
//   [<page URL of a stack whose queue is down> [<page URL of a stack with max_pending 2 and longer runs>
//   <port of an embedding site it allows> <port of one it does not>
//   [<page URL of a stack whose POST /trigger throttle takes one> <page URL of
//   a stack whose WAF takes two POSTs an address>]]]
// (NODE_PATH=tools/node/node_modules; CHROMIUM overrides /usr/bin/chromium).
// Exits 0 when every step passed; otherwise prints the step that failed.
"use strict";
const { chromium } = require("playwright-core");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");

const [pageUrl, shots, unavailableUrl, busyUrl, allowedPort, otherPort, throttledUrl, firewalledUrl] = process.argv.slice(2);
if (!pageUrl || !shots) {
  console.error("usage: node tests/browser/page.cjs <page URL> <screenshot folder>");
  process.exit(2);
}
const origins = new Set([pageUrl, unavailableUrl, busyUrl, throttledUrl, firewalledUrl].filter(Boolean).map((u) => new URL(u).origin));
const origin = new URL(pageUrl).origin;
// A run takes a few seconds on the local stack; the page polls every few.
const PATIENCE_MS = 60000;

// Another person: a POST from another loopback address (the local gateway
// names the TCP peer as the client), answered as {status, body}.
function postFrom(address, url, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const request = http.request(url, {
      method: "POST", localAddress: address,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) },
    }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => { text += chunk; });
      response.on("end", () => resolve({ status: response.statusCode, body: JSON.parse(text || "{}") }));
    });
    request.on("error", reject);
    request.end(data);
  });
}

// A trigger of another person, accepted; a 503 (nothing spent) is sent again.
async function acceptedFrom(address, url, body) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer = await postFrom(address, url, body);
    if (answer.status !== 503) {
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      return answer.body.trigger_id;
    }
  }
  throw new Error("the stack kept answering 503");
}

async function statusOf(base, id) {
  return (await fetch(`${base}/triggers/${id}`)).json();
}

async function statusBecomes(base, id, wanted) {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const trigger = await statusOf(base, id);
    if (trigger.status === wanted) return trigger;
    if (Date.now() > deadline) throw new Error(`${id} stayed ${trigger.status}, never ${wanted}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Another site's page that triggers through the API from its visitors'
// browsers: a JSON POST (CORS, preflighted) and a "simple" text/plain POST
// (no preflight: the kind a hostile page would send). It shows what it got.
function serveEmbeddingSite(port, api) {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Embedding site</title></head>
<body><h1>A site that embeds a trigger button</h1><p id="json">…</p><p id="simple">…</p><script>
const body = JSON.stringify({ pipeline: "app", inputs: { branch: "embed" } });
fetch(${JSON.stringify(api + "/trigger")}, { method: "POST", headers: { "Content-Type": "application/json" }, body })
  .then((r) => r.json().then((b) => { document.getElementById("json").textContent = r.status + " " + (b.trigger_id || b.type); }))
  .catch((e) => { document.getElementById("json").textContent = "blocked by the browser: " + e.name; });
fetch(${JSON.stringify(api + "/trigger")}, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body })
  .then(() => { document.getElementById("simple").textContent = "sent"; });
</script></body></html>`;
  const server = http.createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    response.end(html);
  });
  return new Promise((resolve) => server.listen(Number(port), "127.0.0.1", () => resolve(server)));
}

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
      // The 400, 403, 429 and 503 answers are steps of this test; anything else is not.
      const expected = /Failed to load resource: .* status of (400|403|429|503)/.test(message.text());
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
    // People read the input's hint, never its pattern (tools read that in GET /pipelines).
    // The hint is said once, under the field; the error points to it.
    assert.equal(await page.locator("#error-branch").textContent(), "does not fit the description above");
    assert.match(await page.locator("#hint-branch").textContent(), /^The branch to build · a branch name: /);
    assert.ok(!(await page.locator("body").innerText()).includes("[a-z0-9]"), "no raw pattern on the page");
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
    const brokenLink = await page.locator("#permalink").getAttribute("href");
    await shot("failed");

    step("the quota refusal says until when, in words");
    await submit.click();
    await page.waitForFunction(() => /Refused/.test(document.getElementById("outcome").textContent));
    assert.match(await outcome.textContent(),
      /^Refused: this address has used all its triggers for now\. You can trigger again in 7 days \(\w{3} \d+, \d{4}, \d+:\d{2}\s?[AP]M\)\.$/);
    await shot("refused");

    step("the link shows the earlier trigger again after a reload");
    await page.goto(new URL(permalink, origin).href);
    await page.locator("#run-status", { hasText: "Succeeded" }).waitFor({ timeout: PATIENCE_MS });
    assert.equal(await page.locator("#stages li").count(), 3);
    assert.match(await outcome.textContent(), /Following an earlier trigger/);
    // One date format: today's times as the time of day, in the reader's locale.
    assert.match(await page.locator("#run-what").textContent(),
      /^app, requested \d{1,2}:\d{2}\s?[AP]M · branch=feature\/page · dry_run=true · environment=production · replicas=2$/);
    assert.match(await page.locator("#checked").textContent(), /^Last change \d{1,2}:\d{2}\s?[AP]M\.$/);
    // The form shows the followed trigger's pipeline and inputs, to trigger it again.
    assert.equal(await pipeline.inputValue(), "app");
    assert.equal(await branch.inputValue(), "feature/page");
    assert.equal(await environment.inputValue(), "production");
    assert.equal(await replicas.inputValue(), "2");
    assert.equal(await dryRun.isChecked(), true);
    await shot("reloaded");

    step("a followed trigger of another pipeline selects that pipeline");
    await page.goto(new URL(brokenLink, origin).href);
    await page.locator("#run-status", { hasText: "Failed" }).waitFor({ timeout: PATIENCE_MS });
    await page.waitForFunction(() => document.getElementById("pipeline").value === "broken");
    await page.getByText("Demo pipeline whose runs fail").waitFor();
    await shot("reloaded-other-pipeline");

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

    if (busyUrl) {
      step("in a queue, the page says the place in line and when the run should start");
      const busyOrigin = new URL(busyUrl).origin;
      const busyBase = busyUrl.replace(/\/$/, "");
      const app = (branch) => ({ pipeline: "app", inputs: { branch } });
      // One finished run gives the pipeline a typical duration to estimate from.
      const warm = await acceptedFrom("127.0.0.3", `${busyBase}/trigger`, app("warm"));
      await statusBecomes(busyBase, warm, "succeeded");
      const first = await acceptedFrom("127.0.0.3", `${busyBase}/trigger`, app("run-a"));
      await statusBecomes(busyBase, first, "started");
      await acceptedFrom("127.0.0.4", `${busyBase}/trigger`, app("run-b"));
      await page.goto(busyUrl);
      await page.waitForFunction(() => !document.getElementById("submit").disabled);
      await branch.fill("run-c");
      await submit.click();
      await page.waitForFunction(() => /in line/.test(document.getElementById("run-queue").textContent),
        null, { timeout: PATIENCE_MS });
      assert.match(await page.locator("#run-queue").textContent(),
        /^2nd in line — expected to start in (under a minute|about \d+ minutes?)$/);
      assert.equal(await page.locator("#run-status").textContent(), "Queued: waiting to start");
      await shot("queued");

      step("a trigger that would open one run too many is refused, and nothing is charged");
      await branch.fill("run-d");
      await submit.click();
      await page.locator("#run-status", { hasText: "Not run: the queue was full" }).waitFor({ timeout: PATIENCE_MS });
      assert.match(await page.locator("#run-queue").textContent(),
        /^The queue is full — nothing was charged; try again (in a minute|after \d{1,2}:\d{2}\s?[AP]M)\.$/);
      assert.equal(await outcome.textContent(), "Not run: the queue was full when it came; nothing was charged.");
      assert.equal(await page.locator("#stages li").count(), 0);
      await shot("queue-full");
      // Charged nothing: joining run-c's waiting run leaves 3 of 5 (run-c, this one).
      await branch.fill("run-c");
      await submit.click();
      await page.waitForFunction(() => /Accepted/.test(document.getElementById("outcome").textContent)
        && /2nd in line|Next in line|Running/.test(document.getElementById("status").textContent),
      null, { timeout: PATIENCE_MS });
      assert.match(await outcome.textContent(), /This address has 3 of 5 triggers left\./);

      step("while its run runs, the page says when it should end and whom it serves");
      await page.locator("#run-status", { hasText: "Running" }).waitFor({ timeout: PATIENCE_MS });
      await page.waitForFunction(() => /Expected to finish|Should finish/.test(document.getElementById("run-queue").textContent),
        null, { timeout: PATIENCE_MS });
      assert.match(await page.locator("#run-queue").textContent(),
        /^(Expected to finish in (under a minute|about \d+ minutes?) \(\d{1,2}:\d{2}\s?[AP]M\)|Should finish any moment)$/);
      assert.equal(await page.locator("#run-note").textContent(),
        "(shared with an earlier trigger's run; the run serves 2 triggers)");
      await shot("running-estimate");
      assert.ok(origins.has(busyOrigin));

      if (allowedPort && otherPort) {
        step("a site the API allows can trigger from its page; any other site's page cannot");
        const embeddings = await Promise.all([serveEmbeddingSite(allowedPort, busyBase), serveEmbeddingSite(otherPort, busyBase)]);
        try {
          // Its own page, without this test's listeners: the refused site's
          // console errors are the browser doing its job.
          const visit = async (port) => {
            const tab = await context.newPage();
            const posts = [];
            tab.on("response", (r) => {
              if (r.request().method() === "POST" && r.url().endsWith("/trigger")) posts.push(r.status());
            });
            await tab.goto(`http://127.0.0.1:${port}/`);
            await tab.waitForFunction(() => document.getElementById("json").textContent !== "…"
              && document.getElementById("simple").textContent === "sent", null, { timeout: PATIENCE_MS });
            // Both answers have arrived once both POSTs are seen.
            const deadline = Date.now() + PATIENCE_MS;
            while (posts.length < (port === allowedPort ? 2 : 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
            const json = await tab.locator("#json").textContent();
            await tab.screenshot({ path: path.join(shots, `embedding-${port === allowedPort ? "allowed" : "refused"}.png`) });
            await tab.close();
            return { json, posts: posts.sort() };
          };
          const allowed = await visit(allowedPort);
          assert.match(allowed.json, /^202 [0-9A-Z]{26}$/, "the allowed site triggers and reads the answer");
          assert.deepEqual(allowed.posts, [202, 202], "its simple POST is accepted too: it is allowed");
          const other = await visit(otherPort);
          assert.match(other.json, /^blocked by the browser/, "the preflight of a JSON POST fails");
          assert.deepEqual(other.posts, [403], "the simple POST reaches the API and is refused: cross-site");
        } finally {
          for (const server of embeddings) server.close();
        }
      }
    }

    if (throttledUrl && firewalledUrl) {
      step("when the service is busy for everyone, the page says it is not this address's quota");
      await page.goto(throttledUrl);
      await page.waitForFunction(() => !document.getElementById("submit").disabled);
      await submit.click();
      await page.waitForFunction(() => /^Accepted/.test(document.getElementById("outcome").textContent), null, { timeout: PATIENCE_MS });
      await submit.click();
      await page.waitForFunction(() => /busy/.test(document.getElementById("outcome").textContent), null, { timeout: PATIENCE_MS });
      assert.match(await outcome.textContent(),
        /^The service is busy for everyone right now — this is not your quota, and nothing was counted\. Try again in 10 seconds\.$/);
      await shot("throttled");

      step("a value the firewall takes for an attack is refused, and the page says what to do");
      await page.goto(firewalledUrl);
      await page.waitForFunction(() => !document.getElementById("submit").disabled);
      await branch.fill("${jndi:ldap://example.com/a}");
      await submit.click();
      await page.waitForFunction(() => /firewall/.test(document.getElementById("outcome").textContent), null, { timeout: PATIENCE_MS });
      assert.match(await outcome.textContent(),
        /^The firewall refused this request: something in it looks like an attack \(text such as \$\{jndi:…\}\)\. Nothing was counted; change what you typed and try again\.$/);
      await shot("forbidden");

      step("an address over the firewall's rule is told so, and when to try again, in words");
      await branch.fill("main");
      await submit.click();
      await page.waitForFunction(() => /^Accepted/.test(document.getElementById("outcome").textContent), null, { timeout: PATIENCE_MS });
      await submit.click();
      await page.waitForFunction(() => /too many requests/.test(document.getElementById("outcome").textContent), null, { timeout: PATIENCE_MS });
      assert.match(await outcome.textContent(),
        /^This address sent too many requests in the last few minutes, so the firewall holds it back; nothing was counted against its triggers\. Try again in 10 minutes \(\d{1,2}:\d{2}\s?[AP]M\)\.$/);
      await shot("rate-limited");
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
