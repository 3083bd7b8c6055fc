#!/usr/bin/env bash
# Debian packages the browser test needs: Chromium and a CJK font (without it every
# Chinese glyph renders as a box). Installed only when missing; needs root (CI is root).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi micro hei" || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" fontconfig >/dev/null
fi
