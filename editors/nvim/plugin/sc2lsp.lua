-- sc2lsp commands. The server starts only after require("sc2lsp").setup({...}).
if vim.g.loaded_sc2lsp then
  return
end
vim.g.loaded_sc2lsp = true

vim.api.nvim_set_hl(0, "Sc2AttributionSpan", { default = true, link = "DiffChange" })

local function sc2()
  return require("sc2lsp")
end

vim.api.nvim_create_user_command("Sc2Attribution", function(a)
  sc2().attribution({ range = a.range, line1 = a.line1, line2 = a.line2, bang = a.bang })
end, {
  range = true,
  bang = true,
  desc = "sc2lsp: check the last accepted suggestion (no range), a range or selection, or the buffer (!) against the attribution index",
})
vim.api.nvim_create_user_command("Sc2AttributionClear", function() sc2().clear_attribution() end,
  { desc = "sc2lsp: remove the attribution highlights" })
vim.api.nvim_create_user_command("Sc2Status", function() sc2().status() end,
  { desc = "sc2lsp: model, device and last latencies" })
vim.api.nvim_create_user_command("Sc2Restart", function() sc2().restart() end,
  { desc = "sc2lsp: restart the server (resets the crash count)" })
vim.api.nvim_create_user_command("Sc2PullModel", function(a) sc2().pull_model(a.args ~= "" and a.args or nil) end,
  { nargs = "?", desc = "sc2lsp: download a models.toml model through the server and load it" })
vim.api.nvim_create_user_command("Sc2Tune", function(a)
  sc2().tune({ base = a.args ~= "" and a.args or nil, force = a.bang })
end, { nargs = "?", bang = true,
  desc = "sc2lsp: fine-tune [base] on this workspace (! registers even when not better); serves the adapter when done" })
vim.api.nvim_create_user_command("Sc2TuneCancel", function() sc2().tune_cancel() end,
  { desc = "sc2lsp: stop the fine-tuning run (running :Sc2Tune again goes on where it stopped)" })
