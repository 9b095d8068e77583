#!/bin/bash
# make security-report: probes, hostile inputs and faults (the full
# kill -9 count), a fuzz pass, then test/security/REPORT.md, printed.
# Environment: FUZZTIME (default 60s per target), OTOK_SECURITY_TRIALS
# (default 100), OTOK_BIN (default: dist/otok, built by make build),
# SECURITY_QEMU=1 or SECURITY_QEMU_ARCHES (the probes in the qemu guests
# too; their consoles are kept as dist/security-qemu-ARCH.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${FUZZTIME:-60s}
trials=${OTOK_SECURITY_TRIALS:-100}
out=$(mktemp -d /tmp/otok-security-XXXXXX)
trap 'rm -rf "$out"' EXIT
commit=$(git rev-parse HEAD)
if ! git diff --quiet HEAD -- . 2>/dev/null; then commit="$commit (working tree had uncommitted changes)"; fi
export OTOK_BIN=${OTOK_BIN:-$PWD/dist/otok}
echo "== security tests (trials: $trials, records in $out)"
OTOK_SECURITY_OUT=$out OTOK_SECURITY_TRIALS=$trials nice -n 5 go test -count=1 -p 1 -timeout 60m -v ./test/security/ 2>&1 |
  grep -v '^probe ' | tee "$out/test.log" | grep -E '^(=== RUN|--- |    [a-z_]+_test.go|PASS|FAIL|ok )' | grep -v ': VERDICT arch='
test_status=${PIPESTATUS[0]}
# The probes in the qemu guests: SECURITY_QEMU=1 (all four: arm64 mipsle
# arm mips) or SECURITY_QEMU_ARCHES="…" (GOARCH names). Needs the guests'
# cache (test/qemu/README.md; a cold cache downloads and builds kernels).
if [[ "${SECURITY_QEMU:-0}" == 1 && -z "${SECURITY_QEMU_ARCHES:-}" ]]; then
  SECURITY_QEMU_ARCHES="arm64 mipsle arm mips"
fi
if [[ -n "${SECURITY_QEMU_ARCHES:-}" ]]; then
  echo "== probes in qemu guests: $SECURITY_QEMU_ARCHES"
  go build -o "$out/otok-qemu-exec" ./test/qemu/cmd/otok-qemu-exec
  # The guests have no toolchain and no mksquashfs: the per-arch probe
  # images are built here and travel with testdata/ (the big generated
  # corpora of the host run stay behind).
  rm -rf test/security/testdata/generated/{board,cbor,images,ubus,uci}
  OTOK_SECURITY_BUILD_IMAGES=1 go test -count=1 -run TestBuildProbeImages ./test/security/ >"$out/build-images.log" 2>&1 ||
    { echo "   building the probe images failed:"; cat "$out/build-images.log"; }
  mkdir -p "$out/dist"
  for a in $SECURITY_QEMU_ARCHES; do
    start=$(date +%s)
    env CGO_ENABLED=0 GOARCH="$a" GOMIPS=softfloat GOARM=7 go build -trimpath -ldflags '-s -w' -o "$out/dist/otok-$a" ./cmd/otok
    OTOK_DIST=$out/dist OTOK_QEMU_TIMEOUT=20m GOARCH=$a GOMIPS=softfloat GOARM=7 nice go test -count=1 -timeout 30m \
      -exec "$out/otok-qemu-exec" -run 'TestProbes|TestVolumeTargetSymlink' -v ./test/security/ >"$out/qemu-$a.log" 2>&1
    st=$?
    echo "$a $st $(( $(date +%s) - start ))" >>"$out/qemu-status.txt"
    echo "   $a: exit $st in $(( $(date +%s) - start ))s ($(grep -ac 'SUMMARY arch=' "$out/qemu-$a.log") modes, $(grep -ac 'VERDICT arch=' "$out/qemu-$a.log") verdicts)"
    [[ $st == 0 ]] || tail -20 "$out/qemu-$a.log" | sed 's/^/     /'
    grep -ao 'SUMMARY arch=.*' "$out/qemu-$a.log" >>"$out/qemu.txt"
    grep -ao 'VERDICT arch=.*' "$out/qemu-$a.log" >>"$out/qemu-verdicts.txt"
    grep -ao 'KNOWN BUG[^;]*' "$out/qemu-$a.log" | sort -u | sed "s/^/$a: /" >>"$out/qemu-notes.txt"
    mkdir -p dist && cp "$out/qemu-$a.log" "dist/security-qemu-$a.log"
  done
  rm -f test/security/testdata/generated/probe-*.sqfs
fi
echo "== fuzz ($fuzztime per target)"
FUZZ_RESULTS=$out/fuzz.tsv bash test/fuzz.sh "$fuzztime" >"$out/fuzz.log" 2>&1
fuzz_status=$?
tail -1 "$out/fuzz.log"
go run ./test/security/report -in "$out" -out test/security/REPORT.md -commit "$commit" \
  -fuzztime "$fuzztime" -trials "$trials" -test-status "$test_status" -fuzz-status "$fuzz_status" \
  -date "$(date -u '+%Y-%m-%d %H:%M UTC')" || exit 1
cat test/security/REPORT.md
