#!/usr/bin/env bash
# Build llama.cpp's llama-server, llama-bench and llama-quantize once, from the llama.cpp tree
# vendored in llama-cpp-python's source distribution (the same llama.cpp version the Python
# package runs), into a cache outside the repository. No llama.cpp code enters the repo.
#
#   bench/build_llama_server.sh            # -> ~/.cache/sc2lsp/llama-server/bin/llama-server
#   SC2LSP_LLAMA_SERVER_DIR=/x bench/build_llama_server.sh
#
# Needs: pip (PyPI only), cmake, a C++ compiler. Takes ~10+ minutes on 2 cores; run it nice'd.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
DEST="${SC2LSP_LLAMA_SERVER_DIR:-$HOME/.cache/sc2lsp/llama-server}"
JOBS="${JOBS:-2}"
PIP="${PIP:-python3 -m pip}"

if [ -x "$DEST/bin/llama-server" ] && [ -x "$DEST/bin/llama-bench" ] \
    && [ -x "$DEST/bin/llama-quantize" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  echo "llama-server $VERSION already built in $DEST/bin"
  exit 0
fi
mkdir -p "$DEST/src" "$DEST/bin"
cd "$DEST/src"
if [ ! -d "llama_cpp_python-$VERSION" ]; then
  $PIP download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DEST/src"
  tar xzf "llama_cpp_python-$VERSION.tar.gz"
fi
cd "llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -B build -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_BUILD_TYPE=Release
nice -n 10 cmake --build build --target llama-server llama-bench llama-quantize -j"$JOBS"
for b in llama-server llama-bench llama-quantize; do
  cp "build/bin/$b" "$DEST/bin/$b"
done
echo "$VERSION" > "$DEST/VERSION"
"$DEST/bin/llama-server" --version || true
echo "built into $DEST/bin"
