// The settings sent to the server (initializationOptions and didChangeConfiguration, under "sc2lsp").
// Only the names sc2lsp/config.py knows; the extension's own settings (enable, serverCommand,
// pythonPath, serverArgs, statusPollMs) stay in the client.
import * as vscode from "vscode";

export const SERVER_KEYS = [
  "model",
  "threads",
  "gpuLayers",
  "maxTokens",
  "contextBudget",
  "contextLength",
  "maxPromptMs",
  "maxPredictMs",
  "repoContext",
  "multiline",
  "languages",
] as const;

/** Settings the user set explicitly; unset ones go as null (= the server's default). */
export function serverSettings(): Record<string, unknown> {
  const cfg = vscode.workspace.getConfiguration("sc2lsp");
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) out[key] = explicit(cfg, key) ?? null;
  // attributionIndex only when set: servers without attribution support would warn about the name
  const idx = explicit(cfg, "attributionIndex");
  if (Array.isArray(idx) && idx.length) out.attributionIndex = idx;
  return out;
}

function explicit(cfg: vscode.WorkspaceConfiguration, key: string): unknown {
  const i = cfg.inspect(key);
  if (!i) return undefined;
  return i.workspaceFolderLanguageValue ?? i.workspaceLanguageValue ?? i.globalLanguageValue ??
    i.workspaceFolderValue ?? i.workspaceValue ?? i.globalValue;
}

/** How the server is started: `<pythonPath> -m sc2lsp serve` or `<serverCommand> serve`. */
export function serverExecutable(): { command: string; args: string[] } {
  const cfg = vscode.workspace.getConfiguration("sc2lsp");
  const extra = cfg.get<string[]>("serverArgs", []) ?? [];
  const python = (cfg.get<string>("pythonPath", "") ?? "").trim();
  if (python) return { command: python, args: ["-m", "sc2lsp", "serve", ...extra] };
  const command = (cfg.get<string>("serverCommand", "sc2lsp") ?? "").trim() || "sc2lsp";
  return { command, args: ["serve", ...extra] };
}

export function launchDescription(): string {
  const { command, args } = serverExecutable();
  return "`" + [command, ...args].join(" ") + "`";
}
