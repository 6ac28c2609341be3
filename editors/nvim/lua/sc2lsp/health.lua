--- :checkhealth sc2lsp
local M = {}

local function is_path(model)
  return model:match("%.gguf$") or model:match("/") or model:match("\\")
end

function M.check()
  local h = vim.health
  local sc2 = require("sc2lsp")
  local v = vim.version()
  local version = ("%d.%d.%d"):format(v.major, v.minor, v.patch)

  h.start("sc2lsp: Neovim")
  if sc2.has_inline() then
    h.ok("Neovim " .. version .. " has vim.lsp.inline_completion: suggestions show as ghost text")
  else
    h.warn("Neovim " .. version .. " has no vim.lsp.inline_completion: suggestions come as completion items",
      { "Neovim 0.12 or newer shows them as ghost text" })
  end
  if not vim.lsp.config then
    h.info("no vim.lsp.config (Neovim < 0.11): the server is started with vim.lsp.start on FileType")
  end

  h.start("sc2lsp: server")
  local cfg = sc2.config
  if not cfg then
    h.warn("require('sc2lsp').setup() has not been called", { "call it from your config (:help sc2lsp-setup)" })
    cfg = sc2.defaults
  end
  local cmd, why = sc2.resolve_cmd(cfg.cmd)
  if not cmd then
    h.error(why)
    return
  end
  h.ok("server command found: " .. table.concat(cmd, " "))

  local model = (cfg.settings or {}).model or "sc2-tiny"
  local endpoint = (cfg.settings or {}).endpoint
  if endpoint and endpoint ~= "" then
    h.ok("model " .. model .. " served by " .. endpoint .. " (:Sc2Status shows whether it answers)")
    local key_env = (cfg.settings or {}).apiKeyEnv
    if key_env and key_env ~= "" and (vim.env[key_env] or "") == "" then
      h.warn("apiKeyEnv names " .. key_env .. ", which is not set in Neovim's environment",
        { "export " .. key_env .. " before starting Neovim (the key itself never goes into a setting)" })
    end
  elseif is_path(model) then
    if vim.fn.filereadable(vim.fn.expand(model)) == 1 then
      h.ok("model file present: " .. model)
    else
      h.error("model file not found: " .. model,
        { "point settings.model at an existing .gguf, or use a models.toml name (`sc2lsp models list`)" })
    end
  else
    local base = sc2.base_cmd(cmd)
    if not base then
      h.info("cannot tell whether model " .. model .. " is present (cmd has no `serve` argument)")
    else
      local args = vim.list_extend(vim.deepcopy(base), { "models", "list", "--json" })
      local ok, res = pcall(function() return vim.system(args, { text = true }):wait(60000) end)
      if not ok or res.code ~= 0 then
        h.warn("`" .. table.concat(args, " ") .. "` failed: " .. tostring(ok and res.stderr or res))
      else
        -- JSON null as nil (luanil): "endpoint": null must not read as a set endpoint (vim.NIL is truthy)
        local decoded_ok, data = pcall(vim.json.decode, res.stdout, { luanil = { object = true, array = true } })
        local entry
        for _, m in ipairs(decoded_ok and data.models or {}) do
          if m.name == model then
            entry = m
          end
        end
        local present
        for _, q in ipairs(entry and entry.quants or {}) do
          if q.present then
            present = q.path
          end
        end
        if entry and entry.endpoint then
          h.ok("model " .. model .. " served by " .. entry.endpoint .. " (models.toml)")
        elseif not entry then
          h.error("model " .. model .. " is not in models.toml", { "`sc2lsp models list` shows the known names" })
        elseif present then
          h.ok("model " .. model .. " present: " .. tostring(present))
        else
          h.error("model " .. model .. " is not downloaded",
            { "run `sc2lsp models pull " .. model .. "` or :Sc2PullModel " .. model })
        end
      end
    end
  end

  h.start("sc2lsp: running servers")
  local clients = vim.lsp.get_clients({ name = sc2.name })
  if #clients == 0 then
    h.info("no sc2lsp server running (open a file of a configured filetype)")
  end
  for _, client in ipairs(clients) do
    local bufnr = next(client.attached_buffers)
    local res = bufnr and client:request_sync("sc2lsp/status", vim.empty_dict(), 5000, bufnr)
    if not res or res.err or not res.result then
      h.warn(("client %d: no answer to sc2lsp/status"):format(client.id))
    elseif res.result.state == "ready" then
      h.ok(("client %d: model %s ready (%s)"):format(client.id, tostring(res.result.model), tostring(res.result.model_path)))
    else
      h.error(("client %d: model %s is %s: %s"):format(client.id, tostring(res.result.model), tostring(res.result.state),
        tostring(res.result.error)))
    end
  end
  if sc2.restarts > 0 then
    h.warn(("the server crashed %d time(s) in this session (log: %s)"):format(sc2.restarts, vim.lsp.get_log_path()))
  end
end

return M
