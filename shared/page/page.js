// The public page: pick a pipeline, fill its inputs, trigger it, follow it.
// Every string from the API is set as text (textContent), never as HTML.
"use strict";
(() => {
  const base = document.documentElement.dataset.apiBase || "";
  const $ = (id) => document.getElementById(id);
  const form = $("trigger-form");
  const select = $("pipeline");
  const button = $("submit");

  // Polling: first after 2 s, then 1.5 times longer while nothing changes, at most 30 s.
  const FIRST_POLL_MS = 2000;
  const MAX_POLL_MS = 30000;
  const TERMINAL = new Set(["succeeded", "failed", "stopped", "superseded", "dead_lettered", "refused"]);
  const STATUS = {
    queued: ["Queued: waiting to start", "wait"],
    started: ["Running", "wait"],
    succeeded: ["Succeeded", "ok"],
    failed: ["Failed", "bad"],
    stopped: ["Stopped", "bad"],
    superseded: ["Superseded by a newer run", "bad"],
    dead_lettered: ["Could not be started; the operators have been told", "bad"],
    refused: ["Not run: the queue was full", "bad"],
  };
  const STAGE = {
    STARTED: ["running", "wait"],
    RESUMED: ["running again", "wait"],
    STOPPING: ["stopping", "wait"],
    SUCCEEDED: ["succeeded", "ok"],
    FAILED: ["failed", "bad"],
    STOPPED: ["stopped", "bad"],
    CANCELED: ["canceled", "bad"],
    SUPERSEDED: ["superseded", "bad"],
  };

  let catalog = [];
  let pollTimer = null;
  let following = null;
  // The followed trigger's pipeline and inputs, shown in the form until the reader changes it.
  let followed = null;
  let fromLink = false;
  let touched = false;

  function node(tag, attributes, text) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null && value !== false) element.setAttribute(name, String(value));
    }
    if (text !== undefined) element.textContent = String(text);
    return element;
  }

  async function api(path, options) {
    const response = await fetch(base + path, Object.assign({ headers: { Accept: "application/json" } }, options));
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { status: response.status, headers: response.headers, body: body || {} };
  }

  // The one way this page writes a time, in the reader's locale: the time
  // of day for today ("14:05"), the date too for any other day.
  const TIME = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function at(date) {
    return (date.toDateString() === new Date().toDateString() ? TIME : DATE_TIME).format(date);
  }

  // "in 3 days (Nov 28, 2026, 10:00 AM)"; within the hour, "in 5 minutes (14:05)"; "in 20 seconds".
  function when(date) {
    const seconds = Math.max(0, Math.round((date.getTime() - Date.now()) / 1000));
    const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    const [unit, size] = units.find(([, s]) => seconds >= s) || units[3];
    const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(Math.round(seconds / size), unit);
    return seconds < 60 ? relative : `${relative} (${at(date)})`;
  }

  // "about 12 minutes", "about 2 hours", "under a minute": how far off an estimate is.
  function about(date) {
    const minutes = Math.round((date.getTime() - Date.now()) / 60000);
    if (minutes < 1) return "under a minute";
    if (minutes < 90) return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
    return `about ${Math.round(minutes / 60)} hours`;
  }

  // 1 → "1st", 2 → "2nd", in English; the page's words are English.
  const ORDINAL = new Intl.PluralRules("en", { type: "ordinal" });
  const SUFFIX = { one: "st", two: "nd", few: "rd", other: "th" };
  function ordinal(n) {
    return `${n}${SUFFIX[ORDINAL.select(n)]}`;
  }

  function retryAfter(response) {
    const seconds = Number(response.body.retry_after_seconds ?? response.headers.get("Retry-After"));
    return Number.isFinite(seconds) && seconds >= 0 ? new Date(Date.now() + seconds * 1000) : null;
  }

  function say(text, kind) {
    const outcome = $("outcome");
    outcome.textContent = text;
    outcome.className = "outcome" + (kind ? " " + kind : "");
  }

  function formError(text) {
    const error = $("form-error");
    error.textContent = text || "";
    error.hidden = !text;
  }

  function current() {
    return catalog.find((p) => p.name === select.value);
  }

  // One control per declared input, with its label, description and bounds.
  function renderInputs() {
    const pipeline = current();
    const fields = $("input-fields");
    fields.replaceChildren();
    $("pipeline-description").textContent = (pipeline && pipeline.description) || "";
    const inputs = Object.entries((pipeline && pipeline.inputs) || {});
    $("inputs").hidden = inputs.length === 0;
    for (const [name, spec] of inputs) {
      const id = "input-" + name;
      const hintId = "hint-" + name;
      const errorId = "error-" + name;
      const field = node("div", { class: spec.type === "boolean" ? "field check" : "field", "data-input": name });
      const required = spec.default === undefined;
      const hints = [];
      if (spec.description) hints.push(spec.description);
      let control;
      if (spec.type === "choice") {
        control = node("select", { id, name });
        for (const option of spec.options || []) {
          control.append(node("option", { value: option, selected: option === spec.default }, option));
        }
      } else if (spec.type === "boolean") {
        control = node("input", { id, name, type: "checkbox", checked: spec.default === true });
      } else if (spec.type === "number") {
        control = node("input", {
          id, name, type: "number", inputmode: spec.integer ? "numeric" : "decimal",
          min: spec.min, max: spec.max, step: spec.integer ? 1 : "any", required,
        });
        if (spec.default !== undefined) control.value = String(spec.default);
        const bounds = [spec.integer ? "a whole number" : "a number"];
        if (spec.min !== undefined) bounds.push(`at least ${spec.min}`);
        if (spec.max !== undefined) bounds.push(`at most ${spec.max}`);
        hints.push(bounds.join(", "));
      } else {
        control = node("input", {
          id, name, type: "text", maxlength: spec.max_length, required,
          autocomplete: "off", autocapitalize: "off", spellcheck: "false",
        });
        if (isValidPattern(spec.pattern)) control.setAttribute("pattern", spec.pattern);
        if (spec.default !== undefined) control.value = String(spec.default);
      }
      // What a valid value looks like, in words; the pattern itself is for tools.
      if (spec.hint) hints.push(spec.hint);
      control.setAttribute("aria-describedby", `${hintId} ${errorId}`);
      const label = node("label", { for: id }, name);
      if (!required && spec.type !== "boolean") label.append(" ", node("span", { class: "optional" }, "(optional)"));
      if (spec.type === "boolean") {
        field.append(control, label);
      } else {
        field.append(label, control);
      }
      field.append(node("p", { id: hintId, class: "hint" }, hints.join(" · ")));
      field.append(node("p", { id: errorId, class: "error", hidden: true }));
      fields.append(field);
    }
  }

  // The browser checks `pattern` as a `v`-flag expression; the service uses
  // its own (Rust) syntax, so a pattern the browser cannot read is left to it.
  function isValidPattern(pattern) {
    if (!pattern) return false;
    try {
      new RegExp(`^(?:${pattern})$`, "v");
      return true;
    } catch (_) {
      return false;
    }
  }

  function clearErrors() {
    formError("");
    for (const field of document.querySelectorAll("[data-input]")) {
      const name = field.dataset.input;
      $("input-" + name).removeAttribute("aria-invalid");
      const error = $("error-" + name);
      error.textContent = "";
      error.hidden = true;
    }
  }

  // Each error next to its field; errors of inputs the form lacks above it.
  function showErrors(errors) {
    const elsewhere = [];
    let first = null;
    for (const { input, detail } of errors) {
      const control = typeof input === "string" ? $("input-" + input) : null;
      const error = typeof input === "string" ? $("error-" + input) : null;
      if (control && error && control.closest("[data-input]")) {
        control.setAttribute("aria-invalid", "true");
        error.textContent = inWords(input, String(detail));
        error.hidden = false;
        first = first || control;
      } else {
        elsewhere.push(`${input}: ${detail}`);
      }
    }
    if (elsewhere.length) formError(elsewhere.join("; "));
    if (first) first.focus();
  }

  // A value that does not fit its pattern, said once and in words: the hint
  // is already under the field, and people never read a regex.
  function inWords(input, detail) {
    const spec = ((current() || {}).inputs || {})[input] || {};
    const quotesPattern = spec.pattern && detail.includes(spec.pattern);
    const repeatsHint = spec.hint && detail === `must be ${spec.hint}`;
    return quotesPattern || repeatsHint ? "does not fit the description above" : detail;
  }

  // The values as their JSON types; a number field the browser cannot read is an error here.
  function collect() {
    const pipeline = current();
    const inputs = {};
    const errors = [];
    for (const [name, spec] of Object.entries(pipeline.inputs || {})) {
      const control = $("input-" + name);
      if (spec.type === "boolean") {
        inputs[name] = control.checked;
      } else if (spec.type === "number") {
        if (control.validity.badInput) errors.push({ input: name, detail: "enter a number" });
        else if (control.value !== "") inputs[name] = Number(control.value);
      } else if (control.value !== "" || spec.default === undefined) {
        inputs[name] = control.value;
      }
    }
    return { body: { pipeline: pipeline.name, inputs }, errors };
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const { body, errors } = collect();
    if (errors.length) {
      showErrors(errors);
      say("Some inputs need fixing; nothing was triggered.", "bad");
      return;
    }
    button.disabled = true;
    say("Sending…", "wait");
    let response;
    try {
      response = await api("/trigger", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (_) {
      say("Could not reach the service. Check your connection and try again.", "bad");
      button.disabled = false;
      return;
    }
    button.disabled = false;
    const problem = response.body;
    const type = String(problem.type || "");
    if (response.status === 202) {
      const quota = problem.quota || {};
      const left = quota.remaining === 0
        ? `That was the last trigger this address has until ${when(new Date(quota.resets_at))}.`
        : `This address has ${quota.remaining} of ${quota.limit} triggers left.`;
      say(`Accepted: ${problem.pipeline} will run. ${left}`, "ok");
      follow(problem.trigger_id);
    } else if (response.status === 429 && type.endsWith(":throttled")) {
      const until = retryAfter(response);
      say(`The service is busy for everyone right now — this is not your quota, and nothing was counted. Try again ${until ? when(until) : "in a few seconds"}.`, "bad");
    } else if (response.status === 429 && type.endsWith(":rate-limited")) {
      const until = retryAfter(response);
      say(`This address sent too many requests in the last few minutes, so the firewall holds it back; nothing was counted against its triggers. Try again ${until ? when(until) : "in a few minutes"}.`, "bad");
    } else if (response.status === 429 && type.endsWith("quota-exceeded")) {
      const until = retryAfter(response);
      const scope = type.endsWith("global-quota-exceeded")
        ? "the service has reached its budget of runs for now"
        : type.endsWith("network-quota-exceeded")
          ? `your network (${problem.network || "the block your address is in"}) has used all its triggers for now`
          : "this address has used all its triggers for now";
      say(`Refused: ${scope}. You can trigger again ${until ? when(until) : "later"}.`, "bad");
    } else if (response.status === 403 && type.endsWith(":forbidden")) {
      say("The firewall refused this request: something in it looks like an attack (text such as ${jndi:…}). Nothing was counted; change what you typed and try again.", "bad");
    } else if (response.status === 403 && type.endsWith(":blocked")) {
      const until = retryAfter(response);
      say(`Refused: this address is blocked${until ? " until " + when(until) : ""}.`, "bad");
    } else if (response.status === 400 && type.endsWith("invalid-inputs")) {
      showErrors(Array.isArray(problem.errors) ? problem.errors : []);
      say("Some inputs are not valid; nothing was triggered and no quota was used.", "bad");
    } else if (response.status === 503 && type.endsWith("queue-full")) {
      const until = retryAfter(response);
      say(`The queue is full — nothing was charged; try again ${until ? "after " + at(until) : "later"}.`, "bad");
    } else if (response.status === 503) {
      const until = retryAfter(response);
      say(`The service is unavailable right now; no quota was used. Try again ${until ? when(until) : "soon"}.`, "bad");
    } else if (response.status === 502 || response.status === 504) {
      const until = retryAfter(response);
      say(`The service could not answer just now, so nothing came back to follow. Try again ${until ? when(until) : "in a few seconds"}.`, "bad");
    } else if (response.status === 429) {
      const until = retryAfter(response);
      say(`Too many requests right now; nothing was counted. Try again ${until ? when(until) : "in a few seconds"}.`, "bad");
    } else {
      say(`Not triggered: ${problem.detail || problem.title || "the service answered " + response.status}.`, "bad");
    }
  }

  // Where the trigger stands, in words: its place in line, when it should
  // start or end, or why it was not run.
  function standing(trigger) {
    const queue = trigger.queue;
    if (trigger.status === "queued" && queue && queue.position > 0) {
      const place = queue.position === 1 ? "Next in line" : `${ordinal(queue.position)} in line`;
      const start = trigger.estimated_start_at ? new Date(trigger.estimated_start_at) : null;
      return start ? `${place} — expected to start in ${about(start)}` : place;
    }
    if (trigger.status === "started" && trigger.estimated_end_at) {
      const end = new Date(trigger.estimated_end_at);
      return end > Date.now() ? `Expected to finish in ${about(end)} (${at(end)})` : "Should finish any moment";
    }
    if (trigger.status === "refused") {
      const seconds = Number(trigger.retry_after_seconds);
      const again = !Number.isFinite(seconds) ? "try again later"
        : seconds < 60 ? "try again in a minute"
          : `try again after ${at(new Date(Date.now() + seconds * 1000))}`;
      return `The queue is full — nothing was charged; ${again}.`;
    }
    return "";
  }

  function renderTrigger(trigger) {
    const [text, kind] = STATUS[trigger.status] || [String(trigger.status), "wait"];
    const status = $("run-status");
    status.textContent = text;
    status.className = "state " + kind;
    const served = trigger.run && trigger.run.triggers > 1 ? `; the run serves ${trigger.run.triggers} triggers` : "";
    $("run-note").textContent = trigger.coalesced
      ? `(shared with an earlier trigger's run${served})`
      : served ? `(${served.slice(2)})` : "";
    const line = standing(trigger);
    $("run-queue").textContent = line;
    $("run-queue").hidden = !line;
    const inputs = Object.entries(trigger.inputs || {}).map(([name, value]) => `${name}=${value}`);
    $("run-what").textContent = [`${trigger.pipeline}, requested ${at(new Date(trigger.requested_at))}`, ...inputs].join(" · ");
    const stages = (trigger.stages || []).map((stage) => {
      const [word, tone] = STAGE[stage.state] || [String(stage.state).toLowerCase(), "wait"];
      const item = node("li");
      item.append(node("span", {}, stage.name), node("span", { class: "state " + tone }, word));
      return item;
    });
    if (!stages.length && trigger.status !== "refused") {
      stages.push(node("li", {}, trigger.status === "queued" ? "No stage has started yet" : "Waiting for the first stage"));
    }
    $("stages").replaceChildren(...stages);
    // The answer to the POST said "Accepted"; a refusal behind the queue corrects it.
    if (trigger.status === "refused" && /^Accepted/.test($("outcome").textContent)) {
      say("Not run: the queue was full when it came; nothing was charged.", "bad");
    }
    $("checked").textContent = TERMINAL.has(trigger.status)
      ? `Last change ${at(new Date(trigger.updated_at))}.`
      : `Checked ${at(new Date())}; updates by themselves.`;
    $("progress").hidden = false;
    showFollowed(trigger);
  }

  // The form shows the followed trigger's pipeline and inputs (to trigger
  // it again), until the reader picks something else.
  function showFollowed(trigger) {
    if (!fromLink) return;
    if (!followed) followed = { pipeline: trigger.pipeline, inputs: trigger.inputs || {} };
    if (touched || !catalog.some((p) => p.name === followed.pipeline) || select.dataset.followed) return;
    select.value = followed.pipeline;
    select.dataset.followed = "yes";
    renderInputs();
    for (const [name, value] of Object.entries(followed.inputs)) {
      const control = $("input-" + name);
      if (!control) continue;
      if (control.type === "checkbox") control.checked = value === true;
      else control.value = String(value);
    }
  }

  function follow(id) {
    clearTimeout(pollTimer);
    following = id;
    const link = new URL(window.location.href);
    link.search = "";
    link.searchParams.set("trigger", id);
    link.hash = "";
    $("permalink").href = link.pathname + link.search;
    $("follow").hidden = false;
    const path = `/triggers/${encodeURIComponent(id)}`;
    let delay = FIRST_POLL_MS;
    let last = "";
    const check = async () => {
      if (following !== id) return;
      if (document.hidden) {
        // Nobody is looking: check again when the page is shown.
        document.addEventListener("visibilitychange", check, { once: true });
        return;
      }
      let response = null;
      try {
        response = await api(path);
      } catch (_) {
        response = null;
      }
      if (following !== id) return;
      if (response && response.status === 200) {
        renderTrigger(response.body);
        if (TERMINAL.has(response.body.status)) return;
        const seen = JSON.stringify([response.body.status, response.body.stages]);
        delay = seen === last ? Math.min(delay * 1.5, MAX_POLL_MS) : FIRST_POLL_MS;
        last = seen;
      } else if (response && response.status === 404) {
        say("This trigger is unknown, or so old its record is gone.", "bad");
        $("progress").hidden = true;
        return;
      } else {
        // A busy service or address says when to ask again (Retry-After).
        const until = response && retryAfter(response);
        delay = Math.max(Math.min(delay * 2, MAX_POLL_MS), until ? until.getTime() - Date.now() : 0);
        $("checked").textContent = until
          ? `The service is busy; checking again ${when(new Date(Date.now() + delay))}.`
          : `Could not check just now; trying again in ${Math.round(delay / 1000)} s.`;
      }
      pollTimer = setTimeout(check, delay);
    };
    check();
  }

  async function load() {
    form.addEventListener("submit", submit);
    select.addEventListener("change", () => {
      touched = true;
      clearErrors();
      renderInputs();
    });
    const params = new URLSearchParams(window.location.search);
    const wanted = params.get("trigger");
    if (wanted !== null) {
      if (/^[0-9A-Za-z]{26}$/.test(wanted)) {
        fromLink = true;
        say("Following an earlier trigger.", "wait");
        follow(wanted);
      } else {
        say("The link does not hold a trigger id.", "bad");
      }
    }
    let response;
    try {
      response = await api("/pipelines");
    } catch (_) {
      response = null;
    }
    if (!response || response.status !== 200 || !Array.isArray(response.body.pipelines)) {
      select.replaceChildren(node("option", {}, "Unavailable"));
      formError("Could not load the pipelines. Reload the page to try again.");
      return;
    }
    catalog = response.body.pipelines;
    // `?pipeline=<name>` (a link from another site) picks one; else the default.
    const picked = catalog.some((p) => p.name === params.get("pipeline")) ? params.get("pipeline") : null;
    select.replaceChildren(...catalog.map((p) =>
      node("option", { value: p.name, selected: picked ? p.name === picked : p.default === true }, p.name)));
    select.disabled = false;
    button.disabled = false;
    renderInputs();
    if (followed) showFollowed(followed);
  }

  load();
})();
