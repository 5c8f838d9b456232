#!/usr/bin/env bash
# End-to-end relay benchmark (issue 4): how long mailgw takes to pass a load
# from smtp-source through its spool and queue manager on to smtp-sink, side
# by side in one run with Postfix relaying the same load to the same sink, and
# with the ceiling: smtp-source straight into smtp-sink. See bench/README.md
# for the targets.
#
#   bench/relay.sh                          # 4 KiB and 100 KiB, 3 runs each
#   SIZES=4096 RUNS=1 MESSAGES=5000 bench/relay.sh    # a shorter run
#
# Each run is timed from the start of smtp-source until the sink has counted
# the last message (smtp-sink -c: its running "mesg=" counter, read from its
# output file). Then the queue must drain: Postfix's `postqueue -p`, mailgw's
# spool through `spool-queued` (Spool::queued_ids). The three targets take
# turns within each run, so that a noisy neighbour hurts all of them alike.
#
# Environment: SIZES (message sizes in bytes, default "4096 102400"),
# MESSAGES (per run for sizes under 64 KiB, default 20000), LARGE_MESSAGES
# (per run for 64 KiB and more, default 2000), SESSIONS (default 20), RUNS
# (default 3; medians are reported), TIMEOUT (seconds one run may take until
# the last message arrives, default 600; a target that times out is stopped
# and skipped from then on), QUEUE_GRACE (seconds the queue may take to empty
# after the last arrival, default 30), KEEP=1 keeps the work directory,
# SPOOL=DIR puts mailgw's spool in DIR, CARGO_TARGET_DIR as cargo does.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=relay.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$root/bench/lib.sh"
read -r -a sizes <<<"${SIZES:-4096 102400}"
messages=${MESSAGES:-20000}
large_messages=${LARGE_MESSAGES:-2000}
sessions=${SESSIONS:-20}
runs=${RUNS:-3}
timeout=${TIMEOUT:-600}
queue_grace=${QUEUE_GRACE:-30}
targets=(ceiling postfix mailgw)

"$root/scripts/ensure-packages" postfix:smtp-source postfix:smtp-sink python3:python3
bench_work relay

echo "==> building mailgw and spool-queued (release)"
bench_build spool-queued
start_sink -c
start_postfix
start_mailgw

# One run: looks at how busy the machine is for half a second, starts
# smtp-source with the options given, waits until the sink has counted
# EXPECTED more messages or TIMEOUT seconds have passed, and prints `status
# seconds arrived source_seconds cpu_all cpu_source cpu_sink cpu_server
# background busiest`: status `ok`, `timeout` or `source-failed`; seconds
# from the start to the last arrival; source_seconds until smtp-source was
# done (its accept time), or `killed` at a timeout; CPU seconds of the whole
# machine, of smtp-source, of the sink and of the server (mailgw's process
# when SERVER_PID is not 0, otherwise what is left of the machine's:
# Postfix's processes, and any noise); the percentage of the machine's CPU
# busy before the run (other work) and the processes busiest then.
cat >"$work/measure.py" <<'PY'
import os, re, resource, subprocess, sys, time

sink_out, expected, timeout, sink_pid, server_pid, errors = sys.argv[1:7]
expected, timeout, sink_pid, server_pid = int(expected), float(timeout), int(sink_pid), int(server_pid)
source_args = sys.argv[7:]
tick = os.sysconf("SC_CLK_TCK")
counter = re.compile(rb"mesg=(\d+)\r")

def arrived():
    """The sink's message counter: the last complete update in its output."""
    with open(sink_out, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 512))
        found = counter.findall(f.read())
    return int(found[-1]) if found else 0

def machine_cpu():
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / tick

def process_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def per_process():
    ticks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                name, rest = f.read().rsplit(")", 1)
            fields = rest.split()
            ticks[pid] = (name.split("(", 1)[1], int(fields[11]) + int(fields[12]))
        except (OSError, IndexError):
            pass
    return ticks

busy0, procs0 = machine_cpu(), per_process()
time.sleep(0.5)
background = (machine_cpu() - busy0) / 0.5 / os.cpu_count() * 100
procs1 = per_process()
# Who was busy, for the warning: the three largest, in % of one core.
busiest = sorted(((t - procs0[p][1], n) for p, (n, t) in procs1.items() if p in procs0), reverse=True)[:3]
busiest = ",".join(f"{n.replace(' ', '_')}:{t / tick / 0.5 * 100:.0f}%" for t, n in busiest if t > 0) or "-"
base = arrived()
cpu0 = (machine_cpu(), process_cpu(sink_pid), process_cpu(server_pid) if server_pid else 0.0)
start = time.monotonic()
with open(errors, "ab") as err:
    source = subprocess.Popen(["smtp-source", *source_args], stdout=subprocess.DEVNULL, stderr=err)
source_s = None
status = "ok"
while True:
    now = time.monotonic() - start
    got = arrived() - base
    if source_s is None and source.poll() is not None:
        source_s = now
        if source.returncode != 0:
            status = "source-failed"
            break
    if got >= expected:
        break
    if now > timeout:
        status = "timeout"
        break
    time.sleep(0.002)
seconds = time.monotonic() - start
if source_s is None:
    try:
        source.wait(timeout=max(1.0, timeout - seconds))
        source_s = time.monotonic() - start
    except subprocess.TimeoutExpired:
        source.kill()
        source.wait()
        source_s = None
all_s = machine_cpu() - cpu0[0]
sink_s = process_cpu(sink_pid) - cpu0[1]
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
source_cpu = usage.ru_utime + usage.ru_stime
server_s = process_cpu(server_pid) - cpu0[2] if server_pid else all_s - source_cpu - sink_s
source_s = "killed" if source_s is None else f"{source_s:.3f}"
print(f"{status} {seconds:.3f} {got} {source_s} {all_s:.2f} {source_cpu:.2f} {sink_s:.2f} {server_s:.2f} {background:.0f} {busiest}")
PY

# Messages the target still has queued (ceiling: none).
queued() {
    case $1 in
        ceiling) echo 0 ;;
        postfix) postfix_queued ;;
        mailgw) "$target_dir/release/spool-queued" "$mg_spool" ;;
    esac
}

# Waits up to QUEUE_GRACE seconds for the target's queue to empty; prints
# `left seconds`.
drain() {
    local start left
    start=$(date +%s.%N)
    while :; do
        left=$(queued "$1")
        if [[ $left == 0 ]] || (($(date +%s) - ${start%.*} >= queue_grace)); then break; fi
        sleep 0.1
    done
    echo "$left $(python3 -c "import time; print(f'{time.time() - $start:.1f}')")"
}

# The sink's message counter now.
sink_count() { python3 -c "
import re, sys
data = open(sys.argv[1], 'rb').read()[-512:]
found = re.findall(rb'mesg=(\d+)\r', data)
print(int(found[-1]) if found else 0)" "$work/sink.out"; }

results=$work/results.txt
declare -A stopped
for size in "${sizes[@]}"; do
    n=$messages
    ((size >= 65536)) && n=$large_messages
    load=(-s "$sessions" -m "$n" -l "$size" -f sender@client.example -t rcpt@remote.example)
    echo "==> size $size: $runs runs of smtp-source ${load[*]}, targets in turn"
    for run in $(seq "$runs"); do
        for target in "${targets[@]}"; do
            if [[ -n ${stopped[$target]:-} ]]; then
                echo "$size $target $run skipped" >>"$results"
                continue
            fi
            case $target in
                ceiling) port=$sink_port server=0 ;;
                postfix) port=$pf_port server=0 ;;
                mailgw) port=$mg_port server=$mg_pid ;;
            esac
            read -r status seconds got source_s cpu_all cpu_source cpu_sink cpu_server background busiest < <(
                python3 "$work/measure.py" "$work/sink.out" "$n" "$timeout" "$sink_pid" "$server" \
                    "$work/source.err" "${load[@]}" "127.0.0.1:$port")
            read -r left drain_s < <(drain "$target")
            # Anything arriving after the count was reached would be a
            # duplicate; look once the queue has drained.
            before=$(sink_count)
            echo "$size $target $run $status $seconds $got $source_s $cpu_all $cpu_source $cpu_sink $cpu_server $left $drain_s $n $background" >>"$results"
            printf '    run %s %-8s %-13s %8s s  %6s/%s arrived  source done %8s s  queue left %s (%s s)  machine busy before: %s %%\n' \
                "$run" "$target" "$status" "$seconds" "$got" "$n" "$source_s" "$left" "$drain_s" "$background"
            ((background < 10)) || echo "    warning: the machine was $background % busy before this run ($busiest): figures are not clean" >&2
            if [[ $status != ok ]]; then
                [[ $status == source-failed ]] && tail -5 "$work/source.err" >&2
                echo "    $target: $status; stopped, skipped from now on" >&2
                stopped[$target]=1
                case $target in
                    postfix) stop_postfix ;;
                    mailgw) kill "$mg_pid" 2>/dev/null || true ;;
                    ceiling) ;;
                esac
            fi
            sleep 1
            extra=$(($(sink_count) - before))
            ((extra == 0)) || echo "    $target: $extra more messages arrived after the count was reached" >&2
        done
    done
done

echo
echo "command: bench/relay.sh (SIZES=\"${sizes[*]}\" MESSAGES=$messages LARGE_MESSAGES=$large_messages SESSIONS=$sessions RUNS=$runs TIMEOUT=$timeout)"
echo "machine: $(nproc) cores, $(uname -r), postfix $(postconf -d -h mail_version), $(git -C "$root" log -1 --format='%h %s' | cut -c1-72)"
python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict

rows = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    f = line.split()
    size, target = int(f[0]), f[1]
    if size not in order:
        order.append(size)
    if f[3] == "skipped":
        continue
    rows[size, target].append(f)

def med(values):
    return statistics.median(values) if values else float("nan")

def verdict(ok):
    return "PASS" if ok else "MISS"

for size in order:
    print()
    n = next(int(r[13]) for t in ("ceiling", "postfix", "mailgw") for r in rows[size, t])
    print(f"size {size} B, {n} messages per run (medians of the runs that completed)")
    print(f"{'':10} {'runs ok':>8} {'seconds':>9} {'msg/s':>8} {'source s':>9} "
          f"{'CPU s all':>10} {'source':>7} {'sink':>6} {'server':>7} {'queue left':>11} {'busy before':>11}")
    seconds = {}
    for target in ("ceiling", "postfix", "mailgw"):
        runs = rows[size, target]
        ok = [r for r in runs if r[3] == "ok"]
        if not ok:
            worst = runs[0] if runs else None
            note = f"{worst[3].upper()} after {float(worst[4]):.1f} s: {worst[5]}/{n} arrived" if worst else "not run"
            print(f"{target:10} {0:>8} {note}")
            continue
        seconds[target] = med([float(r[4]) for r in ok])
        col = lambda i: med([float(r[i]) for r in ok])
        left = max(int(r[11]) for r in runs)
        print(f"{target:10} {len(ok):>5}/{len(runs):<2} {seconds[target]:9.2f} {n / seconds[target]:8.0f} "
              f"{col(6):9.2f} {col(7):10.1f} {col(8):7.1f} {col(9):6.1f} {col(10):7.1f} {left:>11}"
          f"{max(int(r[14]) for r in runs):>6} %")
    print("targets:")
    if "mailgw" in seconds and "postfix" in seconds:
        r = seconds["postfix"] / seconds["mailgw"]
        print(f"  mailgw speed / postfix      {r:6.2f}  >= 1.5  {verdict(r >= 1.5)}")
    else:
        print("  mailgw speed / postfix         -   >= 1.5  MISS (no complete run)")
    if "mailgw" in seconds and "ceiling" in seconds:
        r = seconds["mailgw"] / seconds["ceiling"]
        print(f"  mailgw time / ceiling       {r:6.2f}  <= 2    {verdict(r <= 2)}")
    else:
        print("  mailgw time / ceiling          -   <= 2    MISS (no complete run)")
    runs = rows[size, "mailgw"]
    left = max((int(r[11]) for r in runs), default=-1)
    complete = bool(runs) and all(r[3] == "ok" for r in runs)
    empty = "yes" if left == 0 else "no"
    print(f"  mailgw queue empty at end   {empty:>6}  yes    {verdict(left == 0 and complete)}"
          + ("" if complete else " (not every run completed)"))
PY
