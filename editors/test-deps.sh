#!/usr/bin/env bash
# What the editor tests need, installed when this machine allows it; called by `make test`.
#   - as root with apt-get: chromium, ripgrep, libkrb5-dev (VS Code test), tmux (Neovim screenshot)
#   - with node: the .vsix (`make vsix`) and code-server + playwright-core (install-test-tools.sh)
# It never fails: whatever cannot be installed is named once here, and the tests that need it skip
# with one line saying what to install. SC2LSP_NO_INSTALL=1 installs nothing (only reports).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { echo "make test: $*" >&2; }
missing_apt() {
  local need=()
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
  command -v rg >/dev/null 2>&1 || need+=(ripgrep)
  command -v tmux >/dev/null 2>&1 || need+=(tmux)
  if command -v dpkg >/dev/null 2>&1; then dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev); fi
  echo "${need[@]:-}"
}

need="$(missing_apt)"
if [[ -n "$need" && "${SC2LSP_NO_INSTALL:-0}" != 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "installing $need (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need build-essential python3; } >&2 ||
    say "apt-get failed; continuing without: $need"
  need="$(missing_apt)"
fi
if [[ -n "$need" ]]; then
  say "not installed: $need -> the tests that need them skip (as root: apt-get install $need)"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node/npm not found: the VS Code test skips (install node >= 20)"
  exit 0
fi
if [[ "${SC2LSP_NO_INSTALL:-0}" == 1 ]]; then
  exit 0
fi
make --no-print-directory vsix >&2 || say "building the .vsix failed: the VS Code test will report it"
if command -v rg >/dev/null 2>&1; then
  bash editors/vscode/scripts/install-test-tools.sh >&2 || say "code-server/playwright-core could not be installed: the VS Code test skips"
else
  say "ripgrep (rg) not found: code-server is not installed and the VS Code test skips (apt-get install ripgrep)"
fi
exit 0
