#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 30s). A failure that leaves a
# new failing input under testdata/fuzz is a finding and fails the run. Go
# reports a fuzzing worker that hung or died the same way but writes no input;
# such a failure is retried once, so a starved machine does not pass for a bug.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
status=0
count() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | wc -l; }
run() { go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "./$1"; }
while read -r pkg target; do
	before=$(count "$pkg" "$target")
	run "$pkg" "$target" && continue
	if [ "$(count "$pkg" "$target")" -gt "$before" ]; then
		echo "fuzz: $target found a failing input (see $pkg/testdata/fuzz/$target)"
		status=1
		continue
	fi
	echo "fuzz: $target failed without a failing input (worker hung or died); retrying once"
	run "$pkg" "$target" || status=1
done <<'TARGETS'
pkg/cdc FuzzDecodeEvent
pkg/cdc FuzzDecoders
pkg/cdc FuzzAppendJSON
pkg/rawjson FuzzLookup
pkg/rawjson FuzzAppendString
pkg/cdc FuzzSubjectToken
pkg/cdc FuzzKeyToken
pkg/cdc FuzzMongoSnapshotID
pkg/projection FuzzApply
pkg/projection FuzzRestore
pkg/cdc/postgres FuzzRow
pkg/cdc/postgres FuzzPgoutput
pkg/cdc/postgres FuzzSnapshotID
pkg/cdc/mongo FuzzExtJSON
pkg/cdc/mongo FuzzDecodeEntry
pkg/cdc/mongo FuzzOplogChange
TARGETS
exit $status
