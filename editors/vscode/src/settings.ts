// The settings sent to the server (initializationOptions and didChangeConfiguration, under "sc2lsp").
// The extension's package.json declares every setting of sc2lsp/config.py (tests/editors/
// test_vscode_settings.py keeps the two equal); the client's own settings (CLIENT_KEYS) stay here.
import * as cp from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";

// bundled by esbuild: the manifest of this build, so the keys sent are the ones the Settings UI shows
const manifest = require("../package.json") as { contributes: { configuration: { properties: Record<string, unknown> } } };

/** The extension's own settings, never sent to the server. */
export const CLIENT_KEYS: ReadonlySet<string> = new Set(["enable", "serverCommand", "pythonPath", "serverArgs", "statusPollMs", "trace.server"]);

/** The server's settings, in the order package.json declares them. */
export const SERVER_KEYS: readonly string[] = Object.keys(manifest.contributes.configuration.properties)
  .map((k) => k.replace(/^sc2lsp\./, ""))
  .filter((k) => !CLIENT_KEYS.has(k) && k !== "attributionIndex");

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

/** Why the configured server cannot start (checked before launching it), or undefined. */
export async function launchProblem(): Promise<string | undefined> {
  const { command, args } = serverExecutable();
  const found = findExecutable(command);
  const python = args[0] === "-m";
  if (!found) {
    return python
      ? `the Python interpreter '${command}' (sc2lsp.pythonPath) does not exist. Set sc2lsp.pythonPath to a Python that has sc2lsp installed, or clear it to use sc2lsp.serverCommand.`
      : `'${command}' was not found${command.includes("/") ? "" : " on PATH"}. Install sc2lsp (\`pip install -e .\` in the sc2lsp checkout or \`make install\`) and set sc2lsp.serverCommand to its \`sc2lsp\` executable, or sc2lsp.pythonPath to a Python that has it.`;
  }
  if (python) {
    const ok = await new Promise<string | undefined>((resolve) => {
      cp.execFile(found, ["-c", "import sc2lsp"], { timeout: 30_000 }, (err, _out, stderr) =>
        resolve(err ? (stderr || err.message).trim().split("\n").pop() : undefined),
      );
    });
    if (ok !== undefined) {
      return `'${command}' (sc2lsp.pythonPath) cannot import sc2lsp (${ok}). Install it there (\`${command} -m pip install -e .\` in the sc2lsp checkout) or point sc2lsp.pythonPath at the right interpreter.`;
    }
  }
  return undefined;
}

function findExecutable(command: string): string | undefined {
  const isFile = (p: string) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes("/") || command.includes("\\")) return isFile(command) ? command : undefined;
  const exts = process.platform === "win32" ? (process.env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";") : [""];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    for (const ext of exts) {
      const p = path.join(dir, command + ext);
      if (dir && isFile(p)) return p;
    }
  }
  return undefined;
}
