--- sc2lsp: StarCoder2 inline completions from `sc2lsp serve`, attribution and status.
---
--- require("sc2lsp").setup({ cmd = { ".../.venv/bin/sc2lsp", "serve" }, settings = { model = "sc2-tiny" } })
---
--- Neovim 0.12: ghost text through `vim.lsp.inline_completion`. Older Neovim: the server's
--- completion items (the `completionProvider` fallback) through `vim.lsp.completion` (0.11) or
--- 'omnifunc' (0.10). See `:help sc2lsp`.

local api = vim.api

local M = {}

M.name = "sc2lsp"

M.defaults = {
  --- The server command. nil: `sc2lsp serve` from $PATH.
  cmd = nil,
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "go", "rust", "java", "c", "cpp",
  },
  root_markers = { ".git", "pyproject.toml", "setup.py", "package.json", "go.mod", "Cargo.toml", "pom.xml" },
  --- Server settings (docs/server.md), sent as initializationOptions and as the "sc2lsp" section.
  settings = {},
  --- Ghost text when Neovim has `vim.lsp.inline_completion` (0.12); false: the completion menu.
  inline = true,
  --- Buffer-local insert-mode mappings (false: none). Each key may be false.
  keymaps = {
    accept = "<Tab>", -- accept the suggestion (falls back to a plain <Tab>)
    accept_line = "<C-l>", -- accept its first line
    next = "<M-]>", -- next / previous candidate
    prev = "<M-[>",
  },
  --- How often a crashed server is started again before giving up (until :Sc2Restart).
  max_restarts = 3,
  --- Open the quickfix window after :Sc2Attribution found sources.
  open_quickfix = true,
}

M.config = nil
M.restarts = 0
M.messages = {} --- every message this plugin showed: { level = int, msg = string }
M.last_status = nil
M.last_attribution = nil

local ns_attr = api.nvim_create_namespace("sc2lsp.attribution")
M.ns_attribution = ns_attr
local expected_exit = {} --- client ids we stopped on purpose

local ACCEPTED = "sc2lsp.suggestionAccepted"
local PULL = "sc2lsp.pullModel"
local TUNE = "sc2lsp.tune"
local TUNE_CANCEL = "sc2lsp.tuneCancel"

--- vim.notify with a "sc2lsp: " prefix; every message is also kept in M.messages.
function M.notify(msg, level)
  level = level or vim.log.levels.INFO
  if not msg:match("^sc2lsp") then
    msg = "sc2lsp: " .. msg
  end
  table.insert(M.messages, { level = level, msg = msg })
  vim.notify(msg, level, { title = "sc2lsp" })
end

--- Whether this Neovim has LSP inline completion (0.12+).
function M.has_inline()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.get ~= nil
end

--- The server command as a list, or nil and a message naming the fix.
function M.resolve_cmd(cmd)
  if type(cmd) == "string" then
    cmd = { cmd, "serve" }
  end
  if cmd == nil then
    local exe = vim.fn.exepath("sc2lsp")
    if exe == "" then
      return nil,
        "sc2lsp: the server command `sc2lsp` is not on $PATH. Install sc2lsp (`make install` in its checkout) "
          .. "and pass it: require('sc2lsp').setup({ cmd = { '/path/to/sc2lsp/.venv/bin/sc2lsp', 'serve' } })"
    end
    return { exe, "serve" }
  end
  if type(cmd) ~= "table" or type(cmd[1]) ~= "string" then
    return nil, "sc2lsp: `cmd` must be a list like { '/path/to/sc2lsp/.venv/bin/sc2lsp', 'serve' }"
  end
  if vim.fn.executable(cmd[1]) ~= 1 then
    return nil,
      ("sc2lsp: the server command `%s` was not found or is not executable. Install sc2lsp (`make install` "
        .. "in its checkout) and point `cmd` at it: require('sc2lsp').setup({ cmd = { '/path/to/sc2lsp/.venv/bin/sc2lsp', 'serve' } })"):format(
        cmd[1]
      )
  end
  return vim.deepcopy(cmd)
end

--- The command without its `serve ...` tail (to run `sc2lsp models list` and friends), or nil.
function M.base_cmd(cmd)
  for i, a in ipairs(cmd or {}) do
    if a == "serve" then
      return vim.list_slice(cmd, 1, i - 1)
    end
  end
  return nil
end

--- The sc2lsp client attached to a buffer (or any sc2lsp client).
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
  if #clients == 0 and bufnr == nil then
    clients = vim.lsp.get_clients({ name = M.name })
  end
  return clients[1]
end

-- ------------------------------------------------------------------ messages from the server

local function show_message(_, result, ctx)
  if not result or not result.message then
    return
  end
  local levels = { [1] = vim.log.levels.ERROR, [2] = vim.log.levels.WARN, [3] = vim.log.levels.INFO, [4] = vim.log.levels.DEBUG }
  local level = levels[result.type] or vim.log.levels.INFO
  local msg = result.message
  if level == vim.log.levels.ERROR then
    msg = msg .. "  (:checkhealth sc2lsp)"
    if msg:match("model") and not msg:match("models pull") then
      msg = msg .. "; a missing model: `sc2lsp models pull NAME` or :Sc2PullModel NAME"
    end
  end
  M.notify(msg, level)
  return vim.NIL
end

-- ------------------------------------------------------------------ crashes and restarts

local function on_exit(code, signal, client_id)
  vim.schedule(function()
    if expected_exit[client_id] or M._leaving then
      expected_exit[client_id] = nil
      return
    end
    if code == 0 and (signal == 0 or signal == 15) then
      return -- a clean stop (:LspStop, shutdown)
    end
    local cfg = M.config or M.defaults
    M.restarts = M.restarts + 1
    if M.restarts > cfg.max_restarts then
      M.notify(
        ("the server stopped (exit code %d, signal %d) and was restarted %d times; not restarting. "
          .. "Read the log (%s), fix the cause (:checkhealth sc2lsp), then :Sc2Restart"):format(
          code, signal, cfg.max_restarts, vim.lsp.get_log_path()
        ),
        vim.log.levels.ERROR
      )
      return
    end
    M.notify(
      ("the server stopped (exit code %d, signal %d); restarting (%d/%d). Log: %s"):format(
        code, signal, M.restarts, cfg.max_restarts, vim.lsp.get_log_path()
      ),
      vim.log.levels.WARN
    )
    vim.defer_fn(M.start_all, 300 * M.restarts)
  end)
end

-- ------------------------------------------------------------------ accepting

--- Insert (part of) an inline completion item and tell the server what was accepted.
--- @param item vim.lsp.inline_completion.Item
--- @param line_only boolean accept only the first line (a leading line break counts with the next line)
function M.apply(item, line_only)
  local bufnr = api.nvim_get_current_buf()
  local win = api.nvim_get_current_win()
  local text = item.insert_text
  if type(text) ~= "string" then
    text = text.value -- a snippet; the sc2lsp server sends plain text
  end
  if line_only then
    local first, rest = text:match("^(\n*[^\n]*)\n(.*)$")
    if first and rest ~= "" then
      text = first
    end
  end
  local cur = api.nvim_win_get_cursor(win)
  local crow, ccol = cur[1] - 1, cur[2]
  local sr, sc, er, ec = crow, ccol, crow, ccol
  if item.range then
    sr, sc, er, ec = item.range.start.row, item.range.start.col, item.range.end_.row, item.range.end_.col
    -- Characters typed after the request that the suggestion starts with are replaced, not doubled.
    if crow == er and ccol > ec then
      local typed = api.nvim_buf_get_text(bufnr, er, ec, crow, ccol, {})[1]
      if text:sub(1, #typed) == typed then
        ec = ccol
      end
    end
  end
  local lines = vim.split(text, "\n", { plain = true })
  api.nvim_buf_set_text(bufnr, sr, sc, er, ec, lines)
  local last_row = sr + #lines - 1
  local last_col = (#lines == 1 and sc or 0) + #lines[#lines]
  api.nvim_win_set_cursor(win, { last_row + 1, last_col })

  local client = vim.lsp.get_client_by_id(item.client_id)
  if not client then
    return
  end
  local enc = client.offset_encoding or "utf-16"
  local function pos(row, col)
    local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
    return { line = row, character = vim.str_utfindex(line, enc, math.min(col, #line), false) }
  end
  local range = { start = pos(sr, sc), ["end"] = pos(last_row, last_col) }
  M.last_accepted = { bufnr = bufnr, text = text, range = range }
  local provider = client.server_capabilities.executeCommandProvider
  local commands = type(provider) == "table" and provider.commands or {}
  if vim.list_contains(commands, ACCEPTED) then
    local command = item.command or { title = "sc2lsp: suggestion accepted", command = ACCEPTED }
    client:exec_cmd({
      title = command.title,
      command = ACCEPTED,
      arguments = { vim.uri_from_bufnr(bufnr), range, text },
    }, { bufnr = bufnr })
  end
end

--- Accept the shown suggestion; false when there is none.
function M.accept()
  if not M.has_inline() then
    return false
  end
  return vim.lsp.inline_completion.get({ on_accept = function(item) M.apply(item, false) end })
end

--- Accept the first line of the shown suggestion; false when there is none.
function M.accept_line()
  if not M.has_inline() then
    return false
  end
  return vim.lsp.inline_completion.get({ on_accept = function(item) M.apply(item, true) end })
end

function M.cycle(count)
  if M.has_inline() then
    vim.lsp.inline_completion.select({ count = count })
  end
end

--- The ghost text shown in a buffer ("" when none): what `vim.lsp.inline_completion` draws.
function M.ghost_text(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local ns = api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
  if not ns then
    return ""
  end
  local marks = api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  local out = {}
  for _, m in ipairs(marks) do
    local d = m[4]
    local parts = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      if chunk[2] == "ComplHint" then
        table.insert(parts, chunk[1])
      end
    end
    local lines = { table.concat(parts) }
    for _, vl in ipairs(d.virt_lines or {}) do
      local p = {}
      for _, chunk in ipairs(vl) do
        if chunk[2] == "ComplHint" then
          table.insert(p, chunk[1])
        end
      end
      table.insert(lines, table.concat(p))
    end
    table.insert(out, table.concat(lines, "\n"))
  end
  return table.concat(out, "\n")
end

local function set_keymaps(bufnr)
  local km = (M.config or {}).keymaps
  if not km then
    return
  end
  local function map(lhs, fn, desc, fallback)
    if not lhs then
      return
    end
    vim.keymap.set("i", lhs, function()
      if fn() then
        return ""
      end
      return fallback and vim.keycode(lhs) or ""
    end, { buffer = bufnr, expr = true, silent = true, desc = "sc2lsp: " .. desc })
  end
  if M.has_inline() then
    map(km.accept, M.accept, "accept the suggestion", true)
    map(km.accept_line, M.accept_line, "accept the suggestion's first line", true)
    map(km.next, function() M.cycle(1) return true end, "next suggestion", false)
    map(km.prev, function() M.cycle(-1) return true end, "previous suggestion", false)
  end
end

-- ------------------------------------------------------------------ completion-menu fallback

local function item_text(item)
  return item.textEdit and item.textEdit.newText or item.insertText or item.label or ""
end

--- The menu entry of a suggestion: its first non-blank line (a menu word cannot hold line breaks;
--- the whole suggestion replaces it once accepted, see M._complete_done).
function M._convert(item)
  local text = item_text(item)
  local preview = vim.trim(text:match("^%s*([^\n]*)") or "")
  return { word = preview ~= "" and preview or "…", abbr = item.label, menu = "[sc2lsp]", info = text }
end

--- CompleteDone: replace the inserted menu word with the whole (possibly multi-line) suggestion.
function M._complete_done(client_id)
  if vim.v.event.reason ~= nil and vim.v.event.reason ~= "accept" then
    return
  end
  local ci = vim.v.completed_item
  local lsp_item = type(ci) == "table" and vim.tbl_get(ci, "user_data", "nvim", "lsp", "completion_item")
  if not lsp_item or vim.tbl_get(ci, "user_data", "nvim", "lsp", "client_id") ~= client_id then
    return
  end
  local text, word = item_text(lsp_item), ci.word or ""
  local bufnr, win = api.nvim_get_current_buf(), api.nvim_get_current_win()
  local row, col = unpack(api.nvim_win_get_cursor(win))
  vim.schedule(function() -- the text is locked during CompleteDone
    local start = col - #word
    local line = api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ""
    if start < 0 or line:sub(start + 1, col) ~= word or text == word then
      return
    end
    local lines = vim.split(text, "\n", { plain = true })
    api.nvim_buf_set_text(bufnr, row - 1, start, row - 1, col, lines)
    if api.nvim_win_is_valid(win) and api.nvim_win_get_buf(win) == bufnr then
      api.nvim_win_set_cursor(win, { row + #lines - 1, (#lines == 1 and start or 0) + #lines[#lines] })
    end
  end)
end

local function on_attach(client, bufnr)
  local cfg = M.config or M.defaults
  if cfg.inline and M.has_inline() then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  else
    if vim.lsp.completion and vim.lsp.completion.enable then -- 0.11+
      vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true, convert = M._convert })
    else -- 0.10
      vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
    end
    api.nvim_create_autocmd("CompleteDone", {
      buffer = bufnr,
      group = api.nvim_create_augroup("sc2lsp.complete." .. bufnr, {}),
      callback = function() M._complete_done(client.id) end,
    })
  end
  set_keymaps(bufnr)
end

-- ------------------------------------------------------------------ setup and (re)starting

local function build_config(cfg, cmd)
  local settings = vim.deepcopy(cfg.settings or {})
  if not (cfg.inline and M.has_inline()) and settings.completionFallback == nil then
    settings.completionFallback = "always" -- Neovim 0.12 with inline = false still advertises inline completion
  end
  return {
    cmd = cmd,
    filetypes = cfg.filetypes,
    root_markers = cfg.root_markers,
    init_options = settings,
    settings = { sc2lsp = settings },
    handlers = { ["window/showMessage"] = show_message },
    on_attach = on_attach,
    on_exit = on_exit,
    before_init = function(params)
      -- Neovim names a workspace folder by its full path; the server puts the name in the prompt
      -- (StarCoder2's <repo_name>), where the folder's own name belongs, as VS Code sends it.
      for _, folder in ipairs(params.workspaceFolders or {}) do
        folder.name = vim.fs.basename(vim.uri_to_fname(folder.uri))
      end
    end,
  }
end

local function matching_buffers()
  local fts = {}
  for _, ft in ipairs((M.config or M.defaults).filetypes) do
    fts[ft] = true
  end
  local out = {}
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and fts[vim.bo[b].filetype] then
      table.insert(out, b)
    end
  end
  return out
end

--- Start (or attach) the server for every open buffer of a configured filetype.
function M.start_all()
  if not M._lsp_config then
    return
  end
  if vim.lsp.config then
    vim.lsp.enable(M.name, false)
    vim.lsp.enable(M.name, true) -- runs the FileType autocommands of open buffers again
  else
    for _, b in ipairs(matching_buffers()) do
      M._start_legacy(b)
    end
  end
end

function M._start_legacy(bufnr)
  local c = vim.deepcopy(M._lsp_config)
  c.name = M.name
  c.root_dir = vim.fs.root(bufnr, c.root_markers)
  c.root_markers, c.filetypes = nil, nil
  vim.lsp.start(c, { bufnr = bufnr })
end

--- Stop the server(s) on purpose and start again; resets the crash count.
function M.restart()
  M.restarts = 0
  for _, c in ipairs(vim.lsp.get_clients({ name = M.name })) do
    expected_exit[c.id] = true
    c:stop()
  end
  vim.defer_fn(M.start_all, 500)
end

--- Configure and enable the server. Returns false (after a message naming the fix) when it cannot start.
function M.setup(opts)
  local cfg = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  if opts and opts.keymaps == false then
    cfg.keymaps = false
  end
  M.config = cfg
  M.restarts = 0
  local cmd, why = M.resolve_cmd(cfg.cmd)
  if not cmd then
    M.notify(why, vim.log.levels.ERROR)
    return false
  end
  M._lsp_config = build_config(cfg, cmd)
  if vim.lsp.config then
    vim.lsp.config(M.name, M._lsp_config)
    vim.lsp.enable(M.name)
  else -- Neovim 0.10
    api.nvim_create_autocmd("FileType", {
      group = api.nvim_create_augroup("sc2lsp.start", {}),
      pattern = cfg.filetypes,
      callback = function(args) M._start_legacy(args.buf) end,
    })
    for _, b in ipairs(matching_buffers()) do
      M._start_legacy(b)
    end
  end
  api.nvim_create_autocmd("VimLeavePre", {
    group = api.nvim_create_augroup("sc2lsp.leave", {}),
    callback = function() M._leaving = true end,
  })
  return true
end

-- ------------------------------------------------------------------ :Sc2Status

local function fmt_ms(v)
  return type(v) == "number" and ("%.0f ms"):format(v) or "-"
end

--- Lines describing a `sc2lsp/status` result.
function M.format_status(s)
  local lines = {}
  local server = type(s.server) == "table" and s.server or {}
  table.insert(lines, ("sc2lsp %s  model %s: %s%s"):format(server.version or "?", tostring(s.model), tostring(s.state),
    s.model_path ~= vim.NIL and s.model_path and (" (" .. s.model_path .. ")") or ""))
  if s.error ~= nil and s.error ~= vim.NIL then
    table.insert(lines, "error: " .. tostring(s.error))
  end
  table.insert(lines, ("device %s | threads %s | context %s tokens | FIM %s"):format(
    tostring(s.device ~= vim.NIL and s.device or "-"), tostring(s.threads), tostring(s.n_ctx ~= vim.NIL and s.n_ctx or "-"),
    tostring(s.fim_mode)))
  local last = type(s.last) == "table" and s.last or {}
  if next(last) then
    local parts = { "total " .. fmt_ms(last.total_ms) }
    if last.prompt_ms then
      table.insert(parts, ("prompt %s (%s tokens, %s reused)"):format(fmt_ms(last.prompt_ms),
        tostring(last.prompt_tokens or "?"), tostring(last.prompt_tokens_reused or 0)))
    end
    if last.generate_ms then
      table.insert(parts, ("generate %s (%s tokens)"):format(fmt_ms(last.generate_ms), tostring(last.generated_tokens or "?")))
    end
    table.insert(parts, "from " .. tostring(last.source or "?"))
    table.insert(lines, "last suggestion: " .. table.concat(parts, ", "))
  else
    table.insert(lines, "last suggestion: none yet")
  end
  local totals = type(s.totals) == "table" and s.totals or {}
  if totals.requests then
    table.insert(lines, ("requests %s"):format(tostring(totals.requests)))
  end
  return lines
end

function M.status(cb)
  local bufnr = api.nvim_get_current_buf()
  local client = M.client(bufnr) or M.client()
  if not client then
    M.notify("no sc2lsp server is running (is setup() called, the filetype listed, the command found? :checkhealth sc2lsp)",
      vim.log.levels.WARN)
    return
  end
  client:request("sc2lsp/status", vim.empty_dict(), function(err, result)
    if err then
      M.notify("status failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    M.last_status = result
    M.notify(table.concat(M.format_status(result), "\n"), vim.log.levels.INFO)
    if cb then
      cb(result)
    end
  end, bufnr)
end

-- ------------------------------------------------------------------ :Sc2Attribution

local function byte_col(bufnr, row, character, enc)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  if not line then
    return nil
  end
  local ok, col = pcall(vim.str_byteindex, line, enc, character, false)
  return ok and col or #line
end

local function one_line(s, n)
  s = s:gsub("%s+", " ")
  if #s > n then
    s = s:sub(1, n) .. "…"
  end
  return s
end

--- Where a source file can be opened: repo/path when the repository is a local folder.
local function source_file(src)
  local repo, path = src.repo ~= vim.NIL and src.repo or nil, src.path ~= vim.NIL and src.path or ""
  if repo and vim.fn.isdirectory(repo) == 1 then
    return vim.fs.joinpath(repo, path)
  end
  return path
end

--- Show an attribution result: spans as highlights in the buffer, sources in the quickfix list.
function M.show_attribution(result, bufnr, enc)
  M.last_attribution = result
  local target = bufnr
  if result.uri ~= nil and result.uri ~= vim.NIL then
    target = vim.uri_to_bufnr(result.uri)
  end
  if api.nvim_buf_is_loaded(target) then
    api.nvim_buf_clear_namespace(target, ns_attr, 0, -1)
  end
  local items = {}
  for _, span in ipairs(result.spans or {}) do
    local r = span.range ~= vim.NIL and span.range or nil
    local lnum, col = nil, nil
    if r and api.nvim_buf_is_loaded(target) then
      local sr, er = r.start.line, r["end"].line
      local sc, ec = byte_col(target, sr, r.start.character, enc), byte_col(target, er, r["end"].character, enc)
      if sc and ec then
        api.nvim_buf_set_extmark(target, ns_attr, sr, sc, {
          end_row = er, end_col = ec, hl_group = "Sc2AttributionSpan", strict = false,
        })
        lnum, col = sr + 1, sc + 1
      end
    end
    local labels = {}
    if span.common then
      table.insert(labels, "common")
    end
    if span.licenseText then
      table.insert(labels, "license text")
    end
    local head = ("%d doc%s%s"):format(span.count or 0, span.count == 1 and "" or "s",
      #labels > 0 and (", " .. table.concat(labels, ", ")) or "")
    local sources = span.sources or {}
    if #sources == 0 then
      table.insert(items, {
        bufnr = target, lnum = lnum or 1, col = col or 1, type = "I",
        text = ("copied text (%s, no source listed): %s"):format(head, one_line(span.text or "", 80)),
      })
    end
    for _, src in ipairs(sources) do
      local lic = src.license ~= vim.NIL and src.license or "license unknown"
      local repo = src.repo ~= vim.NIL and src.repo or "?"
      local line = src.line ~= vim.NIL and src.line or nil
      table.insert(items, {
        filename = source_file(src),
        lnum = line or 1,
        col = 1,
        type = "W",
        text = ("[%s] %s, %s: %s"):format(repo, lic, head, one_line(span.text or "", 80)),
        user_data = { span = span, source = src },
      })
    end
  end
  vim.fn.setqflist({}, " ", { title = "sc2lsp attribution", items = items })
  local where = table.concat(result.indexes or {}, ", ")
  if #(result.spans or {}) == 0 then
    M.notify(("no part of the text was found in %s"):format(where ~= "" and where or "the index"), vim.log.levels.INFO)
  else
    M.notify(("%d span(s) found in %s; sources in the quickfix list"):format(#result.spans, where), vim.log.levels.WARN)
    if (M.config or M.defaults).open_quickfix then
      vim.cmd("botright copen | wincmd p") -- keep the cursor where it was
    end
  end
end

--- :Sc2Attribution: check a line range (or a visual selection), the whole buffer (!), or the last
--- accepted suggestion (no range).
function M.attribution(opts)
  opts = opts or {}
  local bufnr = api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    M.notify("no sc2lsp server is attached to this buffer (:checkhealth sc2lsp)", vim.log.levels.WARN)
    return
  end
  local enc = client.offset_encoding or "utf-16"
  local uri = vim.uri_from_bufnr(bufnr)
  local params
  if opts.range and opts.range > 0 then
    local l1, l2 = opts.line1, opts.line2
    local s_col, e_col = 0, nil
    local vs, ve = vim.fn.getpos("'<"), vim.fn.getpos("'>")
    if vim.fn.visualmode() == "v" and vs[2] == l1 and ve[2] == l2 then -- a characterwise selection
      s_col = vs[3] - 1
      local line = api.nvim_buf_get_lines(bufnr, l2 - 1, l2, false)[1] or ""
      e_col = math.min(ve[3], #line) -- '> is inclusive
      local ch = line:sub(e_col, e_col)
      if ch ~= "" then -- extend to the whole (multi-byte) character
        e_col = e_col - 1 + #vim.fn.strcharpart(line:sub(e_col), 0, 1)
      end
    end
    local first = api.nvim_buf_get_lines(bufnr, l1 - 1, l1, false)[1] or ""
    local last = api.nvim_buf_get_lines(bufnr, l2 - 1, l2, false)[1] or ""
    e_col = e_col or #last
    params = {
      uri = uri,
      range = {
        start = { line = l1 - 1, character = vim.str_utfindex(first, enc, s_col, false) },
        ["end"] = { line = l2 - 1, character = vim.str_utfindex(last, enc, e_col, false) },
      },
    }
  elseif opts.bang then
    params = { uri = uri }
  else
    params = vim.empty_dict() -- the last accepted suggestion
  end
  client:request("sc2lsp/attribution", params, function(err, result)
    if err then
      M.last_attribution = { error = err.message }
      M.notify("attribution: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    M.show_attribution(result, bufnr, enc)
  end, bufnr)
end

function M.clear_attribution(bufnr)
  api.nvim_buf_clear_namespace(bufnr or api.nvim_get_current_buf(), ns_attr, 0, -1)
end

-- ------------------------------------------------------------------ :Sc2PullModel

function M.pull_model(name)
  local client = M.client(api.nvim_get_current_buf()) or M.client()
  if not client then
    M.notify("no sc2lsp server is running; from a shell: `sc2lsp models pull " .. (name or "NAME") .. "`",
      vim.log.levels.WARN)
    return
  end
  M.notify(("pulling %s (progress in the status line / :lua =vim.lsp.status())"):format(name or "the configured model"))
  client:exec_cmd({ title = "sc2lsp: pull model", command = PULL, arguments = name and { name } or {} },
    { bufnr = api.nvim_get_current_buf() }, function(err, result)
      if err then
        M.notify("pull failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      elseif result then
        M.notify(("model %s ready: %s"):format(tostring(result.model), tostring(result.path)))
      end
    end)
end

-- ------------------------------------------------------------------ :Sc2Tune

--- Fine-tune on the workspace folder (the server runs `sc2lsp tune` as a low-priority child process;
--- progress through `$/progress`, echoed here; on success it serves NAME-lora at once).
--- opts: { base = "starcoder2-3b"?, force = bool?, train = { "max_steps=100", ... }? }
function M.tune(opts)
  opts = opts or {}
  local bufnr = api.nvim_get_current_buf()
  local client = M.client(bufnr) or M.client()
  if not client then
    M.notify("no sc2lsp server is running; from a shell: `sc2lsp tune REPO`", vim.log.levels.WARN)
    return
  end
  local folder = client.root_dir or (client.workspace_folders and client.workspace_folders[1]
    and vim.uri_to_fname(client.workspace_folders[1].uri)) or vim.fn.getcwd()
  local options = vim.empty_dict()
  for _, k in ipairs({ "base", "name", "force", "train", "prepare", "perFile" }) do
    if opts[k] ~= nil then
      options[k] = opts[k]
    end
  end
  M.last_tune = { running = true, folder = folder }
  M.notify(("fine-tuning on %s (progress in the status line; :Sc2TuneCancel stops it)"):format(folder))
  client:exec_cmd({ title = "sc2lsp: fine-tune", command = TUNE, arguments = { folder, options } },
    { bufnr = bufnr }, function(err, result)
      if err then
        M.last_tune = { error = err.message }
        M.notify("fine-tuning: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
        return
      end
      M.last_tune = result
      local level = result and result.registered and vim.log.levels.INFO or vim.log.levels.WARN
      M.notify(("%s\n%s\nreport: %s"):format(tostring(result and result.decision), tostring(result and result.table),
        tostring(result and result.report)), level)
    end)
end

function M.tune_cancel()
  local client = M.client(api.nvim_get_current_buf()) or M.client()
  if client then
    client:exec_cmd({ title = "sc2lsp: cancel fine-tuning", command = TUNE_CANCEL, arguments = {} },
      { bufnr = api.nvim_get_current_buf() }, function() end)
  end
end

-- echo the fine-tuning progress (stage, step/total, loss, ETA) as it comes
api.nvim_create_autocmd("LspProgress", {
  group = api.nvim_create_augroup("sc2lsp_tune_progress", { clear = true }),
  callback = function(ev)
    local p = ev.data and ev.data.params
    if not (p and type(p.token) == "string" and p.token:match("^sc2lsp%-tune")) then
      return
    end
    local v = p.value or {}
    M.tune_progress = v
    if v.message then
      vim.api.nvim_echo({ { ("sc2lsp tune: %s%s"):format(v.message, v.percentage and (" (" .. v.percentage .. "%)") or "") } },
        false, {})
    end
  end,
})

return M
