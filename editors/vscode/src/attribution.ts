// "sc2lsp: Check attribution": asks the server (sc2lsp/attribution) about the selection, or about
// the last accepted suggestion when nothing is selected; highlights the spans found in an indexed
// corpus, explains them in a hover and lists their sources (repository, path, license).
import * as vscode from "vscode";
import { LanguageClient } from "vscode-languageclient/node";

interface Source {
  repo: string;
  path: string;
  license: string | null;
  revision: string | null;
  line: number | null;
}
interface Span {
  start: number;
  end: number;
  range: { start: { line: number; character: number }; end: { line: number; character: number } } | null;
  text: string;
  count: number;
  common: boolean;
  licenseText: boolean;
  sources: Source[];
}
interface Result {
  text: string;
  uri: string | null;
  range: Span["range"];
  indexes: string[];
  spans: Span[];
}

interface Marked {
  range: vscode.Range;
  span: Span;
}

export class AttributionView implements vscode.Disposable {
  private readonly decoration = vscode.window.createTextEditorDecorationType({
    backgroundColor: new vscode.ThemeColor("editor.findMatchHighlightBackground"),
    borderColor: new vscode.ThemeColor("editorWarning.foreground"),
    borderStyle: "dotted",
    borderWidth: "0 0 1px 0",
    overviewRulerColor: new vscode.ThemeColor("editorWarning.foreground"),
    overviewRulerLane: vscode.OverviewRulerLane.Right,
  });
  private readonly marks = new Map<string, Marked[]>(); // document uri -> highlighted spans
  private readonly subs: vscode.Disposable[] = [];
  /** The last result, for tests and the output channel. */
  last: Result | undefined;

  constructor(
    private readonly output: vscode.OutputChannel,
    private readonly client: () => LanguageClient | undefined,
  ) {
    this.subs.push(
      this.decoration,
      vscode.languages.registerHoverProvider({ scheme: "*" }, { provideHover: (doc, pos) => this.hover(doc, pos) }),
      vscode.window.onDidChangeVisibleTextEditors(() => this.redraw()),
      vscode.workspace.onDidChangeTextDocument((e) => {
        // an edit inside the document makes the offsets stale: drop its highlights
        if (e.contentChanges.length && this.marks.delete(e.document.uri.toString())) this.redraw();
      }),
    );
  }

  dispose(): void {
    for (const d of this.subs) d.dispose();
  }

  clear(): void {
    this.marks.clear();
    this.redraw();
  }

  async check(): Promise<Result | undefined> {
    const c = this.client();
    if (!c?.isRunning()) {
      void vscode.window.showErrorMessage("sc2lsp: the server is not running ('sc2lsp: Restart server', or see 'sc2lsp: Show log').");
      return undefined;
    }
    const editor = vscode.window.activeTextEditor;
    const params: Record<string, unknown> = {};
    let what = "the last accepted suggestion";
    if (editor && !editor.selection.isEmpty) {
      params.uri = editor.document.uri.toString();
      params.range = c.code2ProtocolConverter.asRange(editor.selection);
      what = "the selection";
    }
    let result: Result;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: "sc2lsp: checking attribution" },
        () => c.sendRequest<Result>("sc2lsp/attribution", params),
      );
    } catch (err: any) {
      const msg = `sc2lsp: cannot check attribution of ${what}: ${err?.message ?? err}`;
      this.output.appendLine(msg);
      const buttons = /attributionIndex|attribution build/.test(msg) ? ["Open settings"] : [];
      void vscode.window.showErrorMessage(msg, ...buttons).then((b) => {
        if (b) void vscode.commands.executeCommand("workbench.action.openSettings", "sc2lsp.attributionIndex");
      });
      return undefined;
    }
    this.last = result;
    this.show(result, what, c);
    return result;
  }

  private show(result: Result, what: string, c: LanguageClient): void {
    const uri = result.uri ?? vscode.window.activeTextEditor?.document.uri.toString() ?? null;
    const marked: Marked[] = [];
    for (const span of result.spans) {
      if (span.range) marked.push({ range: c.protocol2CodeConverter.asRange(span.range), span });
    }
    if (uri) this.marks.set(uri, marked);
    this.redraw();

    this.output.appendLine(`[attribution] ${what}: ${result.text.length} characters, indexes ${result.indexes.join(", ") || "-"}`);
    for (const span of result.spans) {
      const where = span.range ? `line ${span.range.start.line + 1}` : `chars ${span.start}-${span.end}`;
      this.output.appendLine(
        `  ${where}: ${JSON.stringify(span.text.slice(0, 80))} in ${span.count} document(s)` +
          `${span.common ? " [common]" : ""}${span.licenseText ? " [license text]" : ""}`,
      );
      for (const s of span.sources) this.output.appendLine(`    ${s.repo}/${s.path}${s.line ? `:${s.line}` : ""}  (${s.license ?? "license unknown"})`);
    }
    if (!result.spans.length) {
      void vscode.window.showInformationMessage(`sc2lsp: no part of ${what} (${result.text.length} characters) was found in ${result.indexes.length} index(es).`);
      return;
    }
    type Item = vscode.QuickPickItem & { span: Span; source?: Source };
    const items: Item[] = [];
    for (const span of result.spans) {
      const label = span.text.replace(/\s+/g, " ").trim();
      items.push({ label: label.length > 60 ? label.slice(0, 60) + "…" : label, kind: vscode.QuickPickItemKind.Separator, span });
      for (const s of span.sources) {
        items.push({
          label: `$(repo) ${s.repo}`,
          description: `${s.path}${s.line ? `:${s.line}` : ""}`,
          detail: `${s.license ?? "license unknown"} · found in ${span.count} document(s)${span.common ? " · common code" : ""}${span.licenseText ? " · license text" : ""}`,
          span,
          source: s,
        });
      }
    }
    const qp = vscode.window.createQuickPick<Item>();
    qp.title = `sc2lsp: ${result.spans.length} span(s) of ${what} found in the attribution index`;
    qp.placeholder = "Sources (repository, path, license); pick one to go to its span";
    qp.items = items;
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    qp.onDidAccept(() => {
      const item = qp.selectedItems[0];
      qp.hide();
      const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri);
      if (item?.span.range && editor) {
        const r = c.protocol2CodeConverter.asRange(item.span.range);
        editor.selection = new vscode.Selection(r.start, r.end);
        editor.revealRange(r, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      }
    });
    qp.onDidHide(() => qp.dispose());
    qp.show();
  }

  private redraw(): void {
    for (const editor of vscode.window.visibleTextEditors) {
      const marked = this.marks.get(editor.document.uri.toString()) ?? [];
      editor.setDecorations(
        this.decoration,
        marked.map((m) => ({ range: m.range })),
      );
    }
  }

  private hover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const hits = (this.marks.get(doc.uri.toString()) ?? []).filter((m) => m.range.contains(pos));
    if (!hits.length) return undefined;
    const md = new vscode.MarkdownString();
    for (const { span } of hits) {
      md.appendMarkdown(`**sc2lsp attribution**: found in ${span.count} document(s)`);
      if (span.common) md.appendMarkdown(" — common code");
      if (span.licenseText) md.appendMarkdown(" — license text");
      md.appendMarkdown("\n\n");
      for (const s of span.sources) {
        md.appendMarkdown(`- \`${s.repo}\` ${s.path}${s.line ? `:${s.line}` : ""} — ${s.license ?? "license unknown"}\n`);
      }
    }
    return new vscode.Hover(md, hits[0].range);
  }
}
