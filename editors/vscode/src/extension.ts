// sc2lsp for VS Code: starts `sc2lsp serve`, lets vscode-languageclient (>= 10.0.1 registers
// textDocument/inlineCompletion by default) show its suggestions as ghost text, and adds a status
// bar item, an enable toggle, "Check attribution", "Pull model" and "Fine-tune on this workspace".
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ErrorHandler,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  MessageType,
  ServerOptions,
  ShowMessageNotification,
  State,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";
import { AttributionView } from "./attribution";
import { serverSettings, launchDescription, launchProblem, serverExecutable } from "./settings";

const RESTARTS = 4; // at most this many automatic restarts ...
const RESTART_WINDOW_MS = 3 * 60_000; // ... within this window

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: vscode.StatusBarItem;
let pollTimer: NodeJS.Timeout | undefined;
let attribution: AttributionView;
let lastStatus: any;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("sc2lsp", { log: true });
  status = vscode.window.createStatusBarItem("sc2lsp.status", vscode.StatusBarAlignment.Right, 100);
  status.name = "sc2lsp";
  status.command = "sc2lsp.toggle";
  status.show();
  attribution = new AttributionView(output, () => client);
  context.subscriptions.push(output, status, attribution);

  context.subscriptions.push(
    vscode.commands.registerCommand("sc2lsp.toggle", toggle),
    vscode.commands.registerCommand("sc2lsp.checkAttribution", () => attribution.check()),
    vscode.commands.registerCommand("sc2lsp.clearAttribution", () => attribution.clear()),
    vscode.commands.registerCommand("sc2lsp.pullModelUi", (name?: string) => pullModel(name)),
    vscode.commands.registerCommand("sc2lsp.tuneUi", (folder?: vscode.Uri) => tune(folder)),
    vscode.commands.registerCommand("sc2lsp.restart", restart),
    vscode.commands.registerCommand("sc2lsp.showOutput", () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration(onConfigChanged),
    { dispose: () => stopPolling() },
  );
  renderStatus();
  await startClient();
}

export async function deactivate(): Promise<void> {
  stopPolling();
  if (client) {
    const c = client;
    client = undefined;
    await c.stop(2000).catch(() => undefined);
  }
}

// ------------------------------------------------------------------ the language client

function enabled(): boolean {
  return vscode.workspace.getConfiguration("sc2lsp").get<boolean>("enable", true);
}

/** Bounded restarts: the server is restarted after a crash at most RESTARTS times in RESTART_WINDOW_MS. */
class BoundedRestarts implements ErrorHandler {
  private crashes: number[] = [];
  error(error: Error, _message: unknown, count: number | undefined) {
    output.appendLine(`[sc2lsp] connection error: ${error.message} (count ${count ?? 0})`);
    return { action: count && count > 3 ? ErrorAction.Shutdown : ErrorAction.Continue };
  }
  closed() {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < RESTART_WINDOW_MS);
    this.crashes.push(now);
    if (this.crashes.length > RESTARTS) {
      const msg =
        `sc2lsp: the server stopped ${this.crashes.length} times in ${RESTART_WINDOW_MS / 60000} minutes and will not be ` +
        `restarted. See the 'sc2lsp' log (sc2lsp: Show log), fix the cause, then run 'sc2lsp: Restart server'.`;
      void vscode.window.showErrorMessage(msg, "Show log", "Restart server").then(pick);
      setStatus("$(error) sc2lsp: stopped", msg);
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    output.appendLine(`[sc2lsp] the server stopped; restarting (${this.crashes.length}/${RESTARTS})`);
    setStatus("$(sync~spin) sc2lsp: restarting", "the server stopped and is being restarted");
    return { action: CloseAction.Restart, handled: true };
  }
}

function pick(choice: string | undefined): void {
  if (choice === "Show log") output.show(true);
  else if (choice === "Restart server") void restart();
  else if (choice === "Pull model") void pullModel();
  else if (choice === "Open settings") void vscode.commands.executeCommand("workbench.action.openSettings", "sc2lsp");
}

function makeClient(): LanguageClient {
  const exe = serverExecutable();
  const serverOptions: ServerOptions = { command: exe.command, args: exe.args, options: { env: process.env } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: { sc2lsp: serverSettings() },
    errorHandler: new BoundedRestarts(),
    initializationFailedHandler: (error) => {
      output.appendLine(`[sc2lsp] initialize failed: ${error?.message ?? error}`);
      return false;
    },
    middleware: {
      // the toggle works in the client: no request reaches the server while suggestions are off
      provideInlineCompletionItems: (document, position, context, token, next) => {
        output.debug(`inline completion request ${document.uri.toString()} ${position.line}:${position.character}${enabled() ? "" : " (suggestions off)"}`);
        if (!enabled()) return null;
        return next(document, position, context, token);
      },
      workspace: {
        // the server pulls the "sc2lsp" section: give it only the settings it knows
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) return result;
          return params.items.map((item, i) => (item.section === "sc2lsp" ? serverSettings() : result[i]));
        },
      },
    },
  };
  const c = new LanguageClient("sc2lsp", "sc2lsp", serverOptions, clientOptions);
  // window/showMessage: the same message, plus the button that fixes it
  c.onNotification(ShowMessageNotification.type, (m) => {
    output.appendLine(`[server] ${m.message}`);
    const buttons: string[] = [];
    if (/models pull|Pull model/i.test(m.message)) buttons.push("Pull model");
    if (/attributionIndex|setting/i.test(m.message)) buttons.push("Open settings");
    const show =
      m.type === MessageType.Error
        ? vscode.window.showErrorMessage
        : m.type === MessageType.Warning
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    void show(m.message, ...buttons).then(pick);
    void refreshStatus();
  });
  c.onDidChangeState((e) => {
    if (e.newState === State.Running) {
      hookProgress(c);
      startPolling();
    } else if (e.newState === State.Stopped) {
      stopPolling();
    }
  });
  return c;
}

async function startClient(): Promise<void> {
  setStatus("$(sync~spin) sc2lsp: starting", `starting ${launchDescription()}`);
  const problem = await launchProblem();
  if (problem) {
    const msg = `sc2lsp: cannot start the server: ${problem}`;
    output.appendLine(`[sc2lsp] ${msg}`);
    setStatus("$(error) sc2lsp: no server", msg);
    void vscode.window.showErrorMessage(msg, "Open settings", "Show log").then(pick);
    return;
  }
  const c = makeClient();
  client = c;
  try {
    await c.start();
    output.appendLine(`[sc2lsp] client started: ${launchDescription()}`);
    hookProgress(c);
    startPolling();
    await refreshStatus();
  } catch (err: any) {
    const reason = err?.message ?? String(err);
    output.appendLine(`[sc2lsp] cannot start ${launchDescription()}: ${reason}`);
    const missing = /ENOENT|not found|No module named/i.test(reason);
    const fix = missing
      ? "Install sc2lsp (`pip install -e .` in the sc2lsp checkout, or `make install`) and set 'sc2lsp.serverCommand' " +
        "to the sc2lsp executable or 'sc2lsp.pythonPath' to a Python that has it."
      : "See the 'sc2lsp' log for the server's error output.";
    const msg = `sc2lsp: cannot start the server (${launchDescription()}): ${reason}. ${fix}`;
    setStatus("$(error) sc2lsp: no server", msg);
    void vscode.window.showErrorMessage(msg, "Open settings", "Show log").then(pick);
    client = undefined;
    await c.dispose().catch(() => undefined);
  }
}

async function restart(): Promise<void> {
  stopPolling();
  const old = client;
  client = undefined;
  if (old) await old.dispose(2000).catch(() => undefined);
  await startClient();
}

async function onConfigChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
  if (!e.affectsConfiguration("sc2lsp")) return;
  if (
    e.affectsConfiguration("sc2lsp.serverCommand") ||
    e.affectsConfiguration("sc2lsp.pythonPath") ||
    e.affectsConfiguration("sc2lsp.serverArgs")
  ) {
    await restart();
    return;
  }
  if (e.affectsConfiguration("sc2lsp.statusPollMs")) startPolling();
  if (client?.isRunning()) {
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { sc2lsp: serverSettings() } });
  }
  renderStatus();
}

// ------------------------------------------------------------------ status bar and toggle

async function toggle(): Promise<void> {
  const cfg = vscode.workspace.getConfiguration("sc2lsp");
  const now = !enabled();
  const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await cfg.update("enable", now, target);
  output.appendLine(`[sc2lsp] suggestions ${now ? "enabled" : "disabled"}`);
  renderStatus();
}

function setStatus(text: string, tooltip: string): void {
  status.text = text;
  status.tooltip = tooltip;
}

function startPolling(): void {
  stopPolling();
  const ms = vscode.workspace.getConfiguration("sc2lsp").get<number>("statusPollMs", 2000);
  pollTimer = setInterval(() => void refreshStatus(), Math.max(250, ms));
}

function stopPolling(): void {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = undefined;
}

async function refreshStatus(): Promise<void> {
  const c = client;
  if (!c?.isRunning()) return;
  try {
    lastStatus = await c.sendRequest("sc2lsp/status", {});
  } catch (err: any) {
    output.appendLine(`[sc2lsp] sc2lsp/status failed: ${err?.message ?? err}`);
    return;
  }
  renderStatus();
}

function renderStatus(): void {
  if (!client?.isRunning()) return;
  const s = lastStatus ?? {};
  const model = String(s.model ?? vscode.workspace.getConfiguration("sc2lsp").get("model", "?"));
  const last = s.last ?? {};
  const ms = typeof last.total_ms === "number" ? `${Math.round(last.total_ms)} ms` : "";
  const tip = new vscode.MarkdownString(undefined, true);
  tip.appendMarkdown(`**sc2lsp** — model \`${model}\` (${s.state ?? "?"}${s.device ? ", " + s.device : ""})\n\n`);
  if (s.model_path) tip.appendMarkdown(`file: \`${s.model_path}\`\n\n`);
  if (ms) tip.appendMarkdown(`last suggestion: ${ms} (${last.source ?? "model"})\n\n`);
  if (s.error) tip.appendMarkdown(`error: ${s.error}\n\n`);
  tip.appendMarkdown(enabled() ? "Click to turn suggestions off." : "Click to turn suggestions on.");
  status.tooltip = tip;
  if (!enabled()) {
    status.text = `$(circle-slash) sc2lsp: off`;
    status.command = "sc2lsp.toggle";
  } else if (s.state === "failed" || (s.error && s.state !== "ready")) {
    status.text = `$(warning) sc2lsp: no model`;
    status.command = "sc2lsp.pullModelUi";
  } else if (s.state && s.state !== "ready") {
    status.text = `$(sync~spin) sc2lsp: ${model} (${s.state})`;
    status.command = "sc2lsp.showOutput";
  } else {
    status.text = `$(sparkle) sc2lsp: ${model}${ms ? " " + ms : ""}`;
    status.command = "sc2lsp.toggle";
  }
}

// ------------------------------------------------------------------ Pull model (progress notification)

/** Route server-created work-done progress ($/progress after window/workDoneProgress/create) to a notification. */
function hookProgress(c: LanguageClient): void {
  c.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    let finish: (() => void) | undefined;
    let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let reported = 0;
    const sub = c.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "begin") {
        void vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: value.title, cancellable: !!value.cancellable },
          (progress, cancel) =>
            new Promise<void>((resolve) => {
              reporter = progress;
              finish = resolve;
              // a cancellable progress (sc2lsp.tune) is cancelled on the server through its token
              cancel.onCancellationRequested(() => void c.sendNotification(WorkDoneProgressCancelNotification.type, { token }));
              if (value.message || value.percentage) progress.report({ message: value.message, increment: value.percentage ?? 0 });
              reported = value.percentage ?? 0;
            }),
        );
      } else if (value.kind === "report") {
        const pct = value.percentage ?? reported;
        reporter?.report({ message: value.message, increment: Math.max(0, pct - reported) });
        reported = pct;
        if (value.message) output.appendLine(`[progress] ${value.message}${value.percentage !== undefined ? ` ${value.percentage}%` : ""}`);
      } else {
        if (value.message) output.appendLine(`[progress] ${value.message}`);
        finish?.();
        sub.dispose();
      }
    });
  });
}

async function pullModel(name?: string): Promise<void> {
  const c = client;
  if (!c?.isRunning()) {
    void vscode.window.showErrorMessage("sc2lsp: the server is not running; fix the message shown at startup or run 'sc2lsp: Restart server'.", "Show log").then(pick);
    return;
  }
  const current = vscode.workspace.getConfiguration("sc2lsp").get<string>("model", "sc2-tiny");
  const model =
    name ??
    (await vscode.window.showInputBox({
      title: "sc2lsp: Pull model",
      prompt: "A models.toml name to download (then loaded)",
      value: current,
    }));
  if (!model) return;
  output.appendLine(`[sc2lsp] pulling ${model}`);
  try {
    const result: any = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `sc2lsp: pulling ${model}` },
      () => c.sendRequest(ExecuteCommandRequest.type, { command: "sc2lsp.pullModel", arguments: [model] }),
    );
    output.appendLine(`[sc2lsp] pulled ${model}: ${JSON.stringify(result)}`);
    void vscode.window.showInformationMessage(`sc2lsp: ${model} is ready${result?.path ? ` (${result.path})` : ""}.`);
  } catch (err: any) {
    const msg = `sc2lsp: pulling ${model} failed: ${err?.message ?? err}`;
    output.appendLine(msg);
    void vscode.window.showErrorMessage(msg, "Show log").then(pick);
  }
  await refreshStatus();
}

// ------------------------------------------------------------------ Fine-tune on this workspace

/** `sc2lsp.tune` on a workspace folder: the server runs `sc2lsp tune` as a low-priority child process
 * (cancellable progress notification), switches to the adapter when it is better, and answers the
 * before/after table. */
async function tune(folder?: vscode.Uri): Promise<void> {
  const c = client;
  if (!c?.isRunning()) {
    void vscode.window.showErrorMessage("sc2lsp: the server is not running; fix the message shown at startup or run 'sc2lsp: Restart server'.", "Show log").then(pick);
    return;
  }
  const folders = vscode.workspace.workspaceFolders ?? [];
  let target = folder ?? (folders.length === 1 ? folders[0].uri : undefined);
  if (!target && folders.length > 1) {
    const f = await vscode.window.showWorkspaceFolderPick({ placeHolder: "sc2lsp: the folder to fine-tune on" });
    target = f?.uri;
  }
  if (!target) {
    void vscode.window.showErrorMessage("sc2lsp: open the repository to fine-tune on as a workspace folder first.");
    return;
  }
  output.appendLine(`[sc2lsp] fine-tuning on ${target.fsPath}`);
  try {
    const r: any = await c.sendRequest(ExecuteCommandRequest.type, { command: "sc2lsp.tune", arguments: [target.toString()] });
    output.appendLine(`[sc2lsp] ${r?.decision}\n${r?.table}\nreport: ${r?.report}`);
    const pickAction = await (r?.registered ? vscode.window.showInformationMessage : vscode.window.showWarningMessage)(
      `sc2lsp: ${r?.decision ?? "fine-tuning finished"}`, "Open report", "Show table");
    if (pickAction === "Open report" && r?.report) await vscode.window.showTextDocument(vscode.Uri.file(r.report));
    if (pickAction === "Show table") output.show(true);
  } catch (err: any) {
    const msg = `sc2lsp: fine-tuning: ${err?.message ?? err}`;
    output.appendLine(msg);
    void vscode.window.showErrorMessage(msg, "Show log").then(pick);
  }
  await refreshStatus();
}
