#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks to run dq-whisper: Mesa's lavapipe
# (software Vulkan) from bookworm-backports, since Dawn rejects bookworm's own Mesa 22; Debian's
# chromium (driven by playwright-core, which never downloads a browser), ffmpeg and sox for the
# tests; and the npm dependencies. Idempotent: does nothing that is already done.
# --without-browser leaves chromium out (what `npm run demo` needs is Node's side only).
set -euo pipefail
cd "$(dirname "$0")/.."
with_browser=1
for arg in "$@"; do
  case "$arg" in
    --without-browser) with_browser="" ;;
    *) echo "setup: unknown option $arg (known: --without-browser)" >&2; exit 2 ;;
  esac
done

need_apt=()
mesa_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if [[ -z "$mesa_version" ]] || dpkg --compare-versions "$mesa_version" lt 24; then
  need_apt+=(mesa-vulkan-drivers)
fi
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
apt_updated=""
if ((${#need_apt[@]})); then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding bookworm-backports to apt sources (for Mesa >= 24)"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
      $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  echo "setup: installing ${need_apt[*]} from bookworm-backports"
  $sudo apt-get update -q
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q -t bookworm-backports "${need_apt[@]}"
fi

# From bookworm itself (security updates track the current release): chromium for the browser
# tests, whose WebGPU runs on the bundled SwiftShader when there is no GPU (docs/browser.md);
# ffmpeg and sox, independent decoders the audio tests cross-check ours against.
need_main=()
for pkg in ${with_browser:+chromium} ffmpeg sox espeak-ng fortunes fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-pl fortunes-br fortunes-cs fortunes-bg klavaro fillets-ng-data; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_main+=("$pkg")
done
if ((${#need_main[@]})); then
  echo "setup: installing ${need_main[*]}"
  [[ -n "$apt_updated" ]] || $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_main[@]}"
fi

# onnxruntime-node comes with @huggingface/transformers (a test-only reference for log-mel) and
# its install script downloads native binaries from api.nuget.org, which a build machine may not
# reach; the feature extractor we use needs none of them, so that download is skipped.
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi
