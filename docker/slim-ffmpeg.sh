#!/bin/sh
# Remove from a Debian root filesystem with ffmpeg the files ffmpeg never links or reads,
# then check that ffmpeg and ffprobe still find every library and still run:
#   Mesa's GL drivers and the LLVM/Z3 they load (160 MB): dlopen()ed for on-screen output;
#   Intel Media SDK's hardware library and plugins (26 MB): dlopen()ed for QSV only;
#   the MIME database and X11's keyboard and locale data (13 MB): for desktops.
# Usage: slim-ffmpeg.sh ROOT   (ROOT is / inside an image build)
set -eu
root=${1%/}
lib="$root/usr/lib/x86_64-linux-gnu"
rm -rf "$lib"/dri "$lib"/libLLVM-*.so* "$lib"/libz3.so* "$lib"/mfx "$lib"/libmfxhw64.so* \
       "$root"/usr/share/mime "$root"/usr/share/X11

inside() { if [ -z "$root" ]; then "$@"; else chroot "$root" "$@"; fi; }
if inside ldd /usr/bin/ffmpeg /usr/bin/ffprobe | grep -q "not found"; then
  echo "slim-ffmpeg: removing files broke ffmpeg's libraries" >&2
  exit 1
fi
inside ffmpeg -nostdin -v error -f lavfi -i "sine=duration=0.1" -c:a aac -f matroska - \
  | inside ffprobe -v error -show_streams - >/dev/null \
  || { echo "slim-ffmpeg: ffmpeg no longer encodes and probes" >&2; exit 1; }
