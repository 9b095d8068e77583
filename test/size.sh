#!/bin/bash
# Prints the stripped and xz -9e size of each cross-built binary and fails
# when the mipsle binary exceeds the limit.
set -euo pipefail
dist=$1 limit=$2
printf '%-8s %12s %12s\n' arch stripped xz-9e
rc=0
for f in "$dist"/otok-*; do
  [[ $f == *.xz ]] && continue
  arch=${f##*/otok-}
  s=$(stat -c %s "$f")
  x=$(xz -9e -c "$f" | wc -c)
  printf '%-8s %12d %12d\n' "$arch" "$s" "$x"
  if [[ $arch == mipsle && $s -gt $limit ]]; then
    echo "size: mipsle binary is $s bytes, over the $limit limit" >&2; rc=1
  fi
done
exit $rc
