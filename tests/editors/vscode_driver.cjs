// Drives a running code-server with playwright-core and Debian's chromium, for tests/editors/test_vscode.py.
// Usage: node vscode_driver.cjs CONFIG.json  -> prints one JSON object (the result) on the last stdout line.
// CONFIG: {tools, chromium, url, folder, file, line, col, text, model, screenshot, attribution,
//          attributionScreenshot, timeoutMs}
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const requireTools = createRequire(path.join(cfg.tools, "package.json"));
const { chromium } = requireTools("playwright-core");

const out = { steps: [], ghostLines: [], status: null, attribution: null, errors: [] };
const t0 = Date.now();
function step(name) {
  out.steps.push({ name, ms: Date.now() - t0 });
  process.stderr.write(`[driver ${((Date.now() - t0) / 1000).toFixed(1)}s] ${name}\n`);
}

async function statusText(page) {
  const item = page.locator(".statusbar-item", { hasText: "sc2lsp" }).first();
  return (await item.count()) ? (await item.innerText()).trim() : null;
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 15000 });
  await input.fill(">" + title);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 15000 });
  await page.keyboard.press("Enter");
}

let page;
async function main() {
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on("pageerror", (e) => out.errors.push(String(e)));
    await page.goto(`${cfg.url}/?folder=${encodeURIComponent(cfg.folder)}`, { waitUntil: "domcontentloaded" });
    await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
    step("workbench");

    if (cfg.mode === "missing-server") {
      // a bad setup: the status bar says so and a notification names the fix
      const deadline = Date.now() + 60000;
      for (;;) {
        out.status = await statusText(page);
        out.toasts = await page.locator(".notification-toast").allInnerTexts();
        if (out.status && out.status.includes("no server") && out.toasts.some((t) => t.includes("cannot start"))) break;
        if (Date.now() > deadline) throw new Error(`no 'no server' status and message (status ${out.status}, toasts ${out.toasts})`);
        await page.waitForTimeout(250);
      }
      await page.screenshot({ path: cfg.screenshot });
      step("missing server reported");
      return;
    }

    if (cfg.mode === "pull-model") {
      // the model is missing: the server's message offers "Pull model"; pull it with a progress notification
      const ask = page.locator(".notification-toast", { hasText: "Pull model" }).filter({ hasText: cfg.model });
      await ask.first().waitFor({ timeout: 60000 });
      out.missingModel = (await ask.first().innerText()).trim();
      out.status = await statusText(page);
      await ask.first().locator("a.monaco-button, .monaco-button", { hasText: "Pull model" }).first().click();
      const box = page.locator(".quick-input-widget input");
      await box.waitFor({ state: "visible", timeout: 15000 });
      out.pullInput = await box.inputValue();
      await page.keyboard.press("Enter");
      step("pull started");
      const progress = page.locator(".notification-toast", { hasText: `pulling ${cfg.model}` });
      await progress.first().waitFor({ timeout: 60000 });
      out.progress = (await progress.first().innerText()).trim();
      await page.screenshot({ path: cfg.screenshot });
      step("progress notification");
      const ready = page.locator(".notification-toast", { hasText: `${cfg.model} is ready` });
      const failed = page.locator(".notification-toast", { hasText: `pulling ${cfg.model} failed` });
      await ready.or(failed).first().waitFor({ timeout: 180000 });
      if (await failed.count()) throw new Error(`pull failed: ${await failed.first().innerText()}`);
      out.ready = (await ready.first().innerText()).trim();
      for (const deadline = Date.now() + 30000; Date.now() < deadline; await page.waitForTimeout(250)) {
        out.status = await statusText(page);
        if (out.status && out.status.includes(cfg.model) && !/no model|loading/.test(out.status)) break;
      }
      step("pulled and loaded");
      return;
    }

    // the extension's status bar item shows the model once the server is up and the model loaded
    const deadline = Date.now() + cfg.timeoutMs;
    for (;;) {
      out.status = await statusText(page);
      if (out.status && out.status.includes(cfg.model) && !/loading|starting|not loaded/.test(out.status)) break;
      if (out.status && /no server|no model|stopped/.test(out.status)) throw new Error(`extension status: ${out.status}`);
      if (Date.now() > deadline) throw new Error(`the sc2lsp status bar item never showed a loaded model (last: ${out.status})`);
      await page.waitForTimeout(250);
    }
    step(`status: ${out.status}`);

    // open the file (Quick Open), go to the line and column, type
    await page.locator(".monaco-workbench").click({ position: { x: 640, y: 300 } }).catch(() => undefined);
    await page.keyboard.press("Control+P");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout: 15000 });
    await input.fill(cfg.file);
    await page.locator(".quick-input-list .monaco-list-row", { hasText: cfg.file }).first().waitFor({ timeout: 15000 });
    await page.keyboard.press("Enter");
    const editor = page.locator(".editor-instance .monaco-editor").first();
    await editor.waitFor({ timeout: 15000 });
    await page.locator(".tab.active", { hasText: cfg.file }).waitFor({ timeout: 15000 });
    step("file open");
    await page.keyboard.press("Control+G");
    await input.waitFor({ state: "visible", timeout: 15000 });
    await input.fill(`:${cfg.line}:${cfg.col}`);
    await page.keyboard.press("Enter");
    await page.waitForTimeout(300);
    // one edit with the whole text: the server sees exactly one new document state
    await page.keyboard.insertText(cfg.text);
    step("typed");

    const ghost = editor.locator('[class*="ghost-text"]');
    try {
      await ghost.first().waitFor({ state: "attached", timeout: 30000 });
    } catch {
      // seen on a very busy machine: VS Code sometimes asks no provider after the edit; ask again
      // for the same position (the document is unchanged, so the server's answer is the same)
      out.retriggered = true;
      step("no ghost text after 30 s: Trigger Inline Suggestion");
      await runCommand(page, "Trigger Inline Suggestion");
      await ghost.first().waitFor({ state: "attached", timeout: cfg.ghostTimeoutMs ?? 90000 });
    }
    await page.waitForTimeout(300); // let the rest of a multi-line ghost text render
    // ghost text is split into syntax-highlighted spans: join them per rendered line, top to bottom
    out.ghostLines = await ghost.evaluateAll((els) => {
      const outer = els.filter((e) => !els.some((o) => o !== e && o.contains(e)));
      const lines = new Map();
      for (const e of outer) {
        const line = e.closest(".view-line") || e.parentElement;
        const top = line.getBoundingClientRect().top;
        if (!lines.has(line)) lines.set(line, { top, text: "" });
        lines.get(line).text += e.textContent;
      }
      return [...lines.values()].sort((a, b) => a.top - b.top).map((l) => l.text);
    });
    step("ghost text");
    await page.screenshot({ path: cfg.screenshot });
    // the status bar polls sc2lsp/status (statusPollMs): give it a few polls to show the latency
    for (const until = Date.now() + 5000; ; await page.waitForTimeout(100)) {
      out.status = await statusText(page);
      if ((out.status && out.status.includes(" ms")) || Date.now() > until) break;
    }

    await page.keyboard.press("Tab");
    await page.waitForTimeout(300);
    await page.keyboard.press("Control+S");
    await page.waitForTimeout(1000);
    step("accepted and saved");

    if (cfg.attribution) {
      // 1. nothing selected: the last accepted suggestion (the item's command told the server what it was)
      await page.waitForTimeout(500);
      await runCommand(page, "sc2lsp: Check attribution");
      const toast = page.locator(".notification-toast", { hasText: "last accepted suggestion" });
      await toast.first().waitFor({ timeout: 60000 });
      out.attributionLast = (await toast.first().innerText()).trim();
      step("attribution of the last suggestion");
      await page.keyboard.press("Escape");

      // 2. the whole file selected: spans copied from the indexed corpus, listed with their sources
      await editor.click({ position: { x: 300, y: 100 } });
      await page.keyboard.press("Control+A");
      await runCommand(page, "sc2lsp: Check attribution");
      const title = page.locator(".quick-input-title", { hasText: "attribution index" });
      await title.waitFor({ timeout: 60000 });
      const rows = page.locator(".quick-input-list .monaco-list-row");
      out.attribution = { title: (await title.innerText()).trim(), rows: await rows.allInnerTexts() };
      await page.screenshot({ path: cfg.attributionScreenshot });
      await page.keyboard.press("Enter"); // the first source: its span gets selected
      await page.waitForTimeout(500);
      out.attribution.decorated = await editor.locator('[class*="ced-"]').count();
      await page.keyboard.press("Control+K");
      await page.keyboard.press("Control+I"); // show the hover at the cursor (inside the span)
      const hover = page.locator(".monaco-hover", { hasText: "sc2lsp attribution" });
      await hover.first().waitFor({ state: "visible", timeout: 15000 });
      out.attribution.hover = (await hover.first().innerText()).trim();
      await page.screenshot({ path: cfg.hoverScreenshot });
      step("attribution of the selection");
    }
  } catch (err) {
    if (page) await page.screenshot({ path: cfg.screenshot.replace(/\.png$/, "-failed.png") }).catch(() => undefined);
    throw err;
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    process.stdout.write(JSON.stringify(out) + "\n");
  },
  async (err) => {
    out.error = String(err && err.stack ? err.stack : err);
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exitCode = 1;
  },
);
