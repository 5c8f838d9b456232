#!/usr/bin/env bash
# Compiler benchmark: `mailgwc build`, plan load and recipient lookups, side
# by side with Postfix's postmap building lmdb: and cdb: tables of the same
# addresses. See bench/README.md for what is measured and the targets.
#
#   bench/compile.sh [N]                # N mailboxes (default 100000), 1000 connectors
#   bench/compile.sh --scale            # also 1,000,000 mailboxes: growth ratio
#   bench/compile.sh --postmap-only [N] # only the postmap baseline
#
# Environment: RUNS (repetitions per measurement, default 5; medians are
# reported), KEEP=1 keeps the generated files.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-5}
connectors=1000
scale=0
postmap_only=0
mailboxes=100000
for arg in "$@"; do
    case $arg in
        --scale) scale=1 ;;
        --postmap-only) postmap_only=1 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *[!0-9]* | '') echo "compile.sh: unknown argument '$arg'" >&2; exit 2 ;;
        *) mailboxes=$arg ;;
    esac
done

die() { echo "compile.sh: $*" >&2; exit 1; }

# Tools: GNU time for peak RSS, postmap with its lmdb and cdb map types.
"$root/scripts/ensure-packages" time:/usr/bin/time postfix:postmap postfix-lmdb postfix-cdb python3:python3
export PATH="$PATH:/usr/sbin:/sbin"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailgw-bench.XXXXXX")
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "compile.sh: keeping files in $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

# postmap wants a main.cf; a minimal private one keeps the system's
# settings (if any) out of the measurement. Postfix waits for a main.cf
# younger than a few seconds to settle (0.3 s naps), so backdate it.
mkdir -p "$work/postfix"
echo "compatibility_level = 3.6" >"$work/postfix/main.cf"
touch -d '1 hour ago' "$work/postfix/main.cf"

target=${CARGO_TARGET_DIR:-$root/target}
mailgwc=$target/release/mailgwc
plan_load=$target/release/plan-load
if [[ $postmap_only == 0 ]]; then
    echo "==> cargo build --release -p mailgw-compiler -p mailgw-bench" >&2
    (cd "$root" && cargo build --release -p mailgw-compiler -p mailgw-bench) ||
        die "building mailgwc and plan-load failed (see above)"
fi

# measure NAME CMD...: runs CMD $runs times in the current directory, after
# `reset` (a function set by the caller) each time; appends "NAME wall_s
# peak_kb" per run to $work/raw. Fails (after showing CMD's output) if CMD does.
measure() {
    local name=$1 i start end
    shift
    for ((i = 1; i <= runs; i++)); do
        reset
        start=$(date +%s%N)
        if ! /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/out" 2>&1; then
            cat "$work/out" >&2
            echo "compile.sh: failed in $PWD: $*" >&2
            return 1
        fi
        end=$(date +%s%N)
        printf '%s %s %s\n' "$name" "$(((end - start) / 1000))e-6" "$(tail -n1 "$work/rss")" >>"$work/raw"
    done
}

# median NAME FIELD: the median of column FIELD (2 = seconds, 3 = KB) of NAME.
median() {
    awk -v n="$1" -v f="$2" '$1 == n { print $f + 0 }' "$work/raw" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.6g\n", v[int((NR + 1) / 2)]; else print "nan" }'
}

# kv FILE KEY: a value from plan-load's "key value" output.
kv() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# ratio A B: A / B, or "nan".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b != "nan" && a != "nan" && a != "" && b + 0 > 0) printf "%.3f\n", a / b; else print "nan" }'; }

# check VALUE OP LIMIT: "ok" or "MISSED" (OP is <= < >=).
check() {
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (v == "nan" || v == "") { print "-"; exit }
        ok = (op == "<=" ? v <= l : op == "<" ? v < l : v >= l)
        print ok ? "ok" : "MISSED" }'
}

# bench N: generate N mailboxes and measure everything; leaves the medians
# in variables suffixed with N.
bench() {
    local n=$1 dir=$work/n$1
    echo "==> generating $n mailboxes, $connectors connectors in $dir" >&2
    python3 "$root/bench/gen_config.py" "$n" "$connectors" "$dir"
    # Flush the freshly written inputs, or the first fsync of a measured
    # command pays for writing them back.
    sync
    cd "$dir"

    echo "==> postmap lmdb: and cdb: x$runs" >&2
    reset() { rm -f postmap.txt.lmdb postmap.txt.lmdb-lock; }
    measure "lmdb$n" postmap -c "$work/postfix" lmdb:postmap.txt || die "postmap lmdb: failed"
    reset() { rm -f postmap.txt.cdb; }
    measure "cdb$n" postmap -c "$work/postfix" cdb:postmap.txt || die "postmap cdb: failed"

    if [[ $postmap_only == 0 ]]; then
        echo "==> mailgwc build x$runs" >&2
        reset() { rm -f gateway.plan; }
        measure "mailgwc$n" "$mailgwc" build gateway.mailgw -o gateway.plan ||
            die "mailgwc build failed on the generated configuration (output above);" \
                "the benchmark needs a compiler that builds it (see bench/README.md)"
        [[ -s gateway.plan ]] || die "mailgwc build wrote no gateway.plan"

        echo "==> plan-load" >&2
        reset() { :; }
        local saved=$runs
        runs=1
        measure "planload$n" "$plan_load" gateway.plan postmap.txt --loads 10 --rounds "$saved" ||
            die "plan-load failed (output above)"
        runs=$saved
        cp "$work/out" "$work/planload$n.txt"
    fi
    cd "$work"
}

report() {
    local n=$1 addresses=$((2 * $1))
    local build lmdb cdb build_mb lmdb_mb cdb_mb load lookups load_mb plan_kb
    lmdb=$(median "lmdb$n" 2) lmdb_mb=$(awk -v k="$(median "lmdb$n" 3)" 'BEGIN { printf "%.1f", k / 1024 }')
    cdb=$(median "cdb$n" 2) cdb_mb=$(awk -v k="$(median "cdb$n" 3)" 'BEGIN { printf "%.1f", k / 1024 }')
    build=nan build_mb=nan load=nan lookups=nan load_mb=nan plan_kb="?"
    if [[ $postmap_only == 0 ]]; then
        build=$(median "mailgwc$n" 2)
        build_mb=$(awk -v k="$(median "mailgwc$n" 3)" 'BEGIN { printf "%.1f", k / 1024 }')
        load=$(kv "$work/planload$n.txt" load_median_s)
        lookups=$(kv "$work/planload$n.txt" lookups_per_s)
        load_mb=$(awk -v k="$(median "planload$n" 3)" 'BEGIN { printf "%.1f", k / 1024 }')
        plan_kb=$(awk -v b="$(kv "$work/planload$n.txt" plan_bytes)" 'BEGIN { printf "%.0f", b / 1024 }')
    fi
    printf -v "build_$n" '%s' "$build"
    printf -v "lmdb_$n" '%s' "$lmdb"

    echo
    echo "$n mailboxes ($addresses addresses), $connectors connectors; medians of $runs runs"
    printf '  %-32s %12s %10s\n' "" "wall s" "peak MB"
    printf '  %-32s %12s %10s\n' "mailgwc build (plan ${plan_kb} KiB)" "$build" "$build_mb"
    printf '  %-32s %12s %10s\n' "postmap lmdb:" "$lmdb" "$lmdb_mb"
    printf '  %-32s %12s %10s\n' "postmap cdb:" "$cdb" "$cdb_mb"
    printf '  %-32s %12s %10s\n' "plan load (median of 10)" "$load" "$load_mb"
    printf '  %-32s %12s\n' "recipient lookups per second" "$lookups"
    echo "  targets:"
    local r
    r=$(ratio "$build" "$lmdb")
    printf '    %-30s %10s  %-10s %s\n' "build / postmap lmdb" "$r" "<= 1" "$(check "$r" '<=' 1)"
    r=$(ratio "$load" "$build")
    printf '    %-30s %10s  %-10s %s\n' "load / build" "$r" "< 0.05" "$(check "$r" '<' 0.05)"
    printf '    %-30s %10s  %-10s %s\n' "lookups per second" "$lookups" ">= 2000000" "$(check "$lookups" '>=' 2000000)"
    if [[ $n == 100000 ]]; then
        printf '    %-30s %10s  %-10s %s\n' "mailgwc build peak MB" "$build_mb" "< 300" "$(check "$build_mb" '<' 300)"
    fi
    echo "  ratios: cdb/lmdb $(ratio "$cdb" "$lmdb"), cdb build / mailgwc build $(ratio "$cdb" "$build")"
}

bench "$mailboxes"
if [[ $scale == 1 ]]; then
    [[ $mailboxes == 100000 ]] || die "--scale compares against 100000 mailboxes; leave N at its default"
    bench 1000000
fi

echo
echo "command: bench/compile.sh $*"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), postfix $(dpkg-query -W -f='${Version}' postfix)"
report "$mailboxes"
if [[ $scale == 1 ]]; then
    report 1000000
    echo
    echo "growth 1,000,000 / 100,000 mailboxes (target <= 11):"
    r=$(ratio "$build_1000000" "$build_100000")
    printf '  %-32s %10s  %s\n' "mailgwc build" "$r" "$(check "$r" '<=' 11)"
    printf '  %-32s %10s\n' "postmap lmdb:" "$(ratio "$lmdb_1000000" "$lmdb_100000")"
fi
