#!/bin/bash
# make security-report: probes, hostile inputs and faults (the full
# kill -9 count), a fuzz pass, then test/security/REPORT.md, printed.
# Environment: FUZZTIME (default 60s per target), OTOK_SECURITY_TRIALS
# (default 100), OTOK_BIN (default: dist/otok, built by make build).
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
  grep -v '^probe ' | tee "$out/test.log" | grep -E '^(=== RUN|--- |    [a-z_]+_test.go|PASS|FAIL|ok )' 
test_status=${PIPESTATUS[0]}
# The probes in the qemu guests (opt-in: SECURITY_QEMU_ARCHES="arm64 mipsle
# arm mips"; needs the guests' cache, see test/qemu/README.md).
if [[ -n "${SECURITY_QEMU_ARCHES:-}" ]]; then
  echo "== probes in qemu guests: $SECURITY_QEMU_ARCHES"
  go build -o "$out/otok-qemu-exec" ./test/qemu/cmd/otok-qemu-exec
  OTOK_SECURITY_BUILD_IMAGES=1 go test -count=1 -run TestBuildProbeImages ./test/security/ >/dev/null
  rm -rf test/security/testdata/generated/{board,cbor,images,ubus,uci}
  mkdir -p "$out/dist"
  for a in $SECURITY_QEMU_ARCHES; do
    env GOARCH="$a" GOMIPS=softfloat GOARM=7 go build -trimpath -ldflags '-s -w' -o "$out/dist/otok-$a" ./cmd/otok
    OTOK_DIST=$out/dist OTOK_QEMU_TIMEOUT=20m GOARCH=$a GOMIPS=softfloat GOARM=7 nice go test -count=1 -timeout 30m \
      -exec "$out/otok-qemu-exec" -run TestProbes -v ./test/security/ >"$out/qemu-$a.log" 2>&1
    echo "   $a: exit $? ($(grep -ac 'SUMMARY arch=' "$out/qemu-$a.log") modes)"
    grep -ao 'SUMMARY arch=.*' "$out/qemu-$a.log" >>"$out/qemu.txt"
    grep -ao 'KNOWN BUG[^;]*' "$out/qemu-$a.log" | sort -u | sed "s/^/$a: /" >>"$out/qemu-notes.txt"
  done
fi
echo "== fuzz ($fuzztime per target)"
FUZZ_RESULTS=$out/fuzz.tsv bash test/fuzz.sh "$fuzztime" >"$out/fuzz.log" 2>&1
fuzz_status=$?
tail -1 "$out/fuzz.log"
go run ./test/security/report -in "$out" -out test/security/REPORT.md -commit "$commit" \
  -fuzztime "$fuzztime" -trials "$trials" -test-status "$test_status" -fuzz-status "$fuzz_status" \
  -date "$(date -u '+%Y-%m-%d %H:%M UTC')" || exit 1
cat test/security/REPORT.md
