#!/bin/sh
# Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT
# test_cli.sh - drives the real lmq binary (TAP). Needs LMQ (the built
# command), LMQ_CLI_HELPER (t/cli_helper) and python3 (parses --json).
set -u
LMQ=${LMQ:-./lmq}
HELPER=${LMQ_CLI_HELPER:-./t/cli_helper}
tmp=$(mktemp -d)
holder_pid=""
cleanup() {
  [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
n=0 failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # description, then a shell condition
  d=$1; shift
  if "$@"; then ok "$d"; else not_ok "$d"; fi
}
# status DESCRIPTION EXPECTED COMMAND...: run, compare the exit status
status() {
  d=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  if [ "$got" -eq "$want" ]; then ok "$d"; else
    not_ok "$d (exit $got, want $want)"; sed 's/^/# /' "$tmp/err"; fi
}
# json EXPR: evaluate a python expression on the JSON in $tmp/out as j
json() {
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$tmp/out"
}
sums() { # content checksums of an env's files, LMDB's reader table aside
  (cd "$1" && find . -type f ! -name lock.mdb | sort | xargs md5sum)
}

D=$tmp/d

# --- usage, version, nothing created by reading --------------------------
status "--help is on stdout with status 0" 0 $LMQ --help
check "--help names the commands" grep -q "group reset" "$tmp/out"
status "no arguments is a usage error" 2 $LMQ
status "--version" 0 $LMQ --version
check "--version prints the version" grep -q "^lmq [0-9]" "$tmp/out"
status "stats of a missing directory is 'not found'" 3 $LMQ stats "$tmp/typo"
check "... and does not create it" test ! -e "$tmp/typo"
status "an unknown command is a usage error" 2 $LMQ frobnicate "$tmp/typo"
check "... and creates nothing" test ! -e "$tmp/typo"
mkdir "$tmp/empty"
status "channels of a directory without an env is 'not found'" 3 $LMQ channels "$tmp/empty"
check "... and leaves it empty" test -z "$(ls -A "$tmp/empty")"
status "produce into a missing directory is 'not found'" 3 $LMQ produce "$tmp/typo" a x
check "... and creates nothing" test ! -e "$tmp/typo"

# --- create, produce, channels ------------------------------------------
status "create makes the env and channels" 0 $LMQ create "$D" orders bin
status "produce arguments" 0 $LMQ produce "$D" orders one two three --ids
check "produce --ids prints 3 IDs" test "$(wc -l <"$tmp/out")" -eq 3
first_id=$(head -n 1 "$tmp/out")
second_id=$(sed -n 2p "$tmp/out")
seq 4 1000 | $LMQ -q produce "$D" orders --batch 100 --sync none
check "produce from stdin in batches" test $? -eq 0
status "produce to a missing channel is 'not found'" 3 $LMQ produce "$D" nope x
status "produce --batch 0 is a usage error" 2 $LMQ produce "$D" orders --batch 0 x
status "channels" 0 $LMQ channels "$D"
check "channels prints a header row" grep -q "^CHANNEL  *MESSAGES  *BYTES" "$tmp/out"
status "channels --json" 0 $LMQ --json channels "$D"
check "channels --json parses, orders has 1000 messages" \
  json '[c["messages"] for c in j if c["name"]=="orders"]==[1000]'
status "channel info --json" 0 $LMQ channel info "$D" orders --json
check "channel info --json: first_id" json "j['first_id']==$first_id"
status "channel info of a missing channel is 'not found'" 3 $LMQ channel info "$D" nope
status "stats --json" 0 $LMQ stats --json "$D"
check "stats --json: 2 channels" json 'j["channels"]==2'

# --- binary-safe formats -------------------------------------------------
python3 -c '
import sys, struct
recs=[b"", b"a\x00b", b"tab\there\nnewline", bytes(range(256))]
sys.stdout.buffer.write(b"".join(struct.pack(">I",len(r))+r for r in recs))' >"$tmp/in.lp"
status "produce --input lp" 0 $LMQ -q produce "$D" bin --input lp <"$tmp/in.lp" 
$LMQ read "$D" bin --format lp >"$tmp/out.lp"
check "read --format lp gives back the exact bytes" cmp -s "$tmp/in.lp" "$tmp/out.lp"
status "read --format text" 0 $LMQ read "$D" bin
check "text escapes NUL, tab and newline" grep -q 'a\\x00b' "$tmp/out"
check "text keeps one message per line" test "$(wc -l <"$tmp/out")" -eq 4
status "read --format json" 0 $LMQ read "$D" bin --format json
check "json lines parse and base64 decodes to the bytes" python3 -c '
import json, base64, sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert base64.b64decode(rows[1]["base64"])==b"a\x00b"
assert base64.b64decode(rows[3]["base64"])==bytes(range(256))
assert rows[2]["text"]=="tab\there\nnewline"' "$tmp/out"
status "read --format hex" 0 $LMQ read "$D" bin --format hex --from 0 --count 2
check "hex of a, NUL, b is 610062" grep -q "	610062$" "$tmp/out"
status "read --format base64" 0 $LMQ read "$D" bin --format base64
status "read --format bogus is a usage error" 2 $LMQ read "$D" bin --format bogus

# --- read: positions, no cursor ---------------------------------------
status "read --from ID --count 1" 0 $LMQ read "$D" orders --from "$second_id" --count 1
check "... gives that message" test "$(cut -f1 "$tmp/out")" = "$second_id"
status "read --from a time" 0 $LMQ read "$D" orders --from -1h --count 2
check "... from the earliest" test "$(head -n 1 "$tmp/out" | cut -f1)" = "$first_id"
status "read --from latest has nothing" 0 $LMQ read "$D" orders --from latest
check "... nothing" test ! -s "$tmp/out"
status "read --from garbage is a usage error" 2 $LMQ read "$D" orders --from yesterdayish
before=$(sums "$D")
$LMQ channels "$D" >/dev/null; $LMQ groups "$D" >/dev/null
$LMQ read "$D" orders >/dev/null; $LMQ stats "$D" >/dev/null
$LMQ verify "$D" >/dev/null; $LMQ -q wal dump "$D" >/dev/null
$LMQ channel info "$D" orders >/dev/null
check "read commands change no file" test "$before" = "$(sums "$D")"

# --- consume and commits ----------------------------------------------
lag() { $LMQ --json group info "$D" orders g >"$tmp/gi" && python3 -c \
  "import json,sys; print(json.load(open(sys.argv[1]))['$1'])" "$tmp/gi"; }
status "consume creates the group and commits" 0 $LMQ consume "$D" orders g 3
check "consume prints 3 messages" test "$(wc -l <"$tmp/out")" -eq 3
check "lag is 997" test "$(lag lag)" -eq 997
status "consume > /dev/full fails with an I/O status" 6 sh -c "$LMQ consume '$D' orders g 5 >/dev/full"
check "... and commits nothing" test "$(lag lag)" -eq 997
$LMQ consume "$D" orders g 100 2>"$tmp/err" | head -n 1 >"$tmp/out"
check "consume | head -1 shows one message" test "$(wc -l <"$tmp/out")" -eq 1
check "... and commits exactly that one" test "$(lag lag)" -eq 996
status "consume --no-commit" 0 $LMQ consume "$D" orders g 10 --no-commit
check "... prints 10" test "$(wc -l <"$tmp/out")" -eq 10
check "... commits nothing" test "$(lag lag)" -eq 996
status "consume --follow --timeout stops when idle" 0 \
  $LMQ consume "$D" orders g --follow --timeout 200 --format raw
check "... after the 996 messages" test "$(wc -l <"$tmp/out")" -eq 996
check "lag is 0" test "$(lag lag)" -eq 0
status "consume --format json" 0 $LMQ consume "$D" bin g2 --format json
check "... parses" python3 -c '
import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$tmp/out"

# --- groups ------------------------------------------------------------
status "groups" 0 $LMQ groups "$D"
check "groups has a header and both groups" \
  sh -c "grep -q '^CHANNEL  *GROUP  *CURSOR  *COMMITTED  *LAG' '$tmp/out' && grep -q g2 '$tmp/out'"
status "groups --json" 0 $LMQ --json groups "$D" orders
check "groups --json: g on orders, lag 0" json 'j[0]["group"]=="g" and j[0]["lag"]==0'
status "group reset --dry-run" 0 $LMQ --json group reset "$D" orders g --to-earliest --dry-run
check "... says where it would go" json "j['dry_run'] and j['to']==$first_id"
check "... and moves nothing" test "$(lag lag)" -eq 0
status "group reset --to-earliest" 0 $LMQ group reset "$D" orders g --to-earliest
check "... lag 1000" test "$(lag lag)" -eq 1000
status "group reset --to-id" 0 $LMQ group reset "$D" orders g --to-id "$second_id"
check "... lag 999" test "$(lag lag)" -eq 999
status "group reset --to-latest" 0 $LMQ group reset "$D" orders g --to-latest
check "... lag 0" test "$(lag lag)" -eq 0
status "group reset --to-time" 0 $LMQ group reset "$D" orders g --to-time -1h
check "... lag 1000" test "$(lag lag)" -eq 1000
status "group reset without a target is a usage error" 2 $LMQ group reset "$D" orders g
status "group reset of a missing group is 'not found'" 3 $LMQ group reset "$D" orders nope --to-latest
status "group create --at latest" 0 $LMQ group create "$D" orders late --at latest
status "group rm" 0 $LMQ group rm "$D" orders late
status "group info of the removed group is 'not found'" 3 $LMQ group info "$D" orders late

# --- a directory held by another process -----------------------------
mkfifo "$tmp/hold"
$HELPER hold "$D" <"$tmp/hold" >"$tmp/ready" 2>&1 &
holder_pid=$!
exec 9>"$tmp/hold"
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  grep -q ready "$tmp/ready" 2>/dev/null && break
  sleep 0.1
done
status "produce into a held directory is 'busy'" 4 $LMQ produce "$D" orders x
check "... naming the holder's pid" grep -q "process $holder_pid" "$tmp/err"
status "channels works beside the writer" 0 $LMQ channels "$D"
status "read works beside the writer" 0 $LMQ read "$D" orders --count 1
status "verify works beside the writer" 0 $LMQ verify "$D"
status "backup of a held directory (read-only copy)" 0 $LMQ backup "$D" "$tmp/bk-held"
exec 9>&-
wait "$holder_pid"
holder_pid=""

# --- backup ------------------------------------------------------------
status "backup" 0 $LMQ backup "$D" "$tmp/bk"
status "... the copy opens" 0 $LMQ --json channels "$tmp/bk"
check "... and reading it created nothing (no lock.mdb)" test ! -e "$tmp/bk/lock.mdb"
check "... with every message" json '[c["messages"] for c in j]==[4,1000]'
status "... the copy has the group cursors" 0 $LMQ --json groups "$tmp/bk" orders
check "... g at lag 1000" json 'j[0]["lag"]==1000'
status "backup to a non-empty directory fails" 1 $LMQ backup "$D" "$tmp/bk"
status "backup --compact" 0 $LMQ backup "$D" "$tmp/bk2" --compact
status "... verifies" 0 $LMQ verify "$tmp/bk2"

# --- WAL: unapplied records, dump, verify, corruption ----------------
C=$tmp/crash
$HELPER crash "$C" c 50
check "helper left a WAL" test -n "$(ls "$C/wal")"
status "stats of a crashed env" 0 $LMQ --json stats "$C"
check "... reports unapplied WAL bytes" json 'j["unapplied_bytes"]>0'
check "... and notes them on stderr" grep -q "not applied" "$tmp/err"
status "wal dump --json" 0 $LMQ --json wal dump "$C"
check "... 50 unapplied produce records" \
  json 'len([r for r in j if r["type"]=="produce" and not r["applied"]])==50'
status "verify a sound WAL" 0 $LMQ --json verify "$C"
check "... ok, 50 records' bytes unapplied" json 'j["ok"] and j["wal_unapplied_bytes"]>0'
cp -r "$C" "$tmp/torn"
seg=$(ls "$tmp/torn/wal"/*.log | head -n 1)
end=$($LMQ --json wal dump "$tmp/torn" | python3 -c '
import json,sys; r=[x for x in json.load(sys.stdin) if x["type"]!="DAMAGE"][-1]
print(r["offset"]+r["bytes"])')
last=$($LMQ --json wal dump "$tmp/torn" | python3 -c '
import json,sys; r=[x for x in json.load(sys.stdin) if x["type"]=="produce"][-1]
print(r["offset"])')
truncate -s $((last + 10)) "$seg"
status "verify: a torn tail is not corruption" 0 $LMQ --json verify "$tmp/torn"
check "... it is reported as torn" json 'j["torn_bytes"]>0'
seg=$(ls "$C/wal"/*.log | head -n 1)
off=$($LMQ --json wal dump "$C" | python3 -c '
import json,sys; print([x for x in json.load(sys.stdin) if x["type"]=="produce"][2]["offset"])')
printf '\377' | dd of="$seg" bs=1 seek=$((off + 12)) conv=notrunc 2>/dev/null
status "verify finds the corrupt WAL (status 5)" 5 $LMQ verify "$C"
check "... naming the segment and offset" grep -q "corrupt at offset $off" "$tmp/out"
status "wal dump shows the damage (status 5)" 5 $LMQ wal dump "$C"
check "... as CORRUPT" grep -q CORRUPT "$tmp/out"
status "a write command refuses the corrupt dir (status 5)" 5 $LMQ produce "$C" c x
status "--salvage opens it, skipping the damage" 0 $LMQ --salvage produce "$C" c x
status "... after which it verifies" 0 $LMQ verify "$C"
status "... and holds 49 + 1 messages" 0 $LMQ --json channels "$C"
check "... 50" json 'j[0]["messages"]==50'

# --- bench, destroy -----------------------------------------------------
status "bench" 0 $LMQ bench --messages 2000 --batch 100 --size 64
check "bench prints a summary" grep -q "msg/s" "$tmp/out"
status "destroy" 0 $LMQ destroy "$D" bin
status "... gone" 3 $LMQ read "$D" bin

echo "1..$n"
[ "$failed" -eq 0 ]
