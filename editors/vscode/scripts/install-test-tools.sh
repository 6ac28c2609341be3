#!/usr/bin/env bash
# Installs what the real-VS-Code test (tests/editors/test_vscode.py) needs, outside the repository:
#   - Debian packages: chromium (the browser playwright drives), ripgrep (seeds @vscode/ripgrep),
#     libkrb5-dev (code-server's kerberos module builds against it)  [only with --apt, needs root]
#   - code-server 4.100.x (the newest release that runs on Node 20) and playwright-core, from npm,
#     into $SC2LSP_VSCODE_TOOLS (default ~/.cache/sc2lsp/vscode-test).
# Idempotent: a second run with everything in place does nothing.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.52.0}"
TOOLS="${SC2LSP_VSCODE_TOOLS:-$HOME/.cache/sc2lsp/vscode-test}"

if [[ "${1:-}" == "--apt" ]]; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v rg >/dev/null || need+=(ripgrep)
  dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
  if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" build-essential python3
  fi
fi

command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }
command -v rg >/dev/null || { echo "ripgrep (rg) is required: apt-get install ripgrep" >&2; exit 1; }

stamp="$TOOLS/.installed-$CODE_SERVER_VERSION-$PLAYWRIGHT_VERSION"
if [[ -f "$stamp" && -x "$TOOLS/node_modules/.bin/code-server" ]]; then
  echo "vscode test tools already installed in $TOOLS"
  exit 0
fi
mkdir -p "$TOOLS"

# @vscode/ripgrep's postinstall downloads rg from GitHub: seed its cache with Debian's rg instead.
tmp="${TMPDIR:-/tmp}"
seed="$tmp/vscode-ripgrep-cache-1.15.11"
if [[ ! -f "$seed/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" ]]; then
  mkdir -p "$seed/build"
  cp "$(command -v rg)" "$seed/build/rg"
  tar -C "$seed/build" -czf "$seed/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" rg
  rm -rf "$seed/build"
fi

cd "$TOOLS"
[[ -f package.json ]] || echo '{"name": "sc2lsp-vscode-test-tools", "private": true}' > package.json
# as root npm drops privileges for install scripts unless told not to
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_fund=false npm_config_audit=false
npm install --no-save --loglevel=error "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION"
"$TOOLS/node_modules/.bin/code-server" --version
touch "$stamp"
