#!/usr/bin/env bash
# SMTP accept benchmark: how fast mailgw takes mail in (to a durable spool),
# side by side in one run with Postfix (its own config in a temp dir, queue on
# the same disk, relaying to smtp-sink) and with the smtp-source → smtp-sink
# ceiling. See bench/README.md for the targets.
#
#   bench/smtp.sh                 # 20 sessions, 20,000 messages of 4 KiB
#   MESSAGES=5000 bench/smtp.sh   # a shorter run
#
# Environment: MESSAGES (default 20000), SESSIONS (default 20), SIZE (bytes,
# default 4096), RUNS (repetitions, default 3; medians are reported),
# KEEP=1 keeps the work directory, SPOOL=DIR puts mailgw's spool in DIR
# instead of the work directory (e.g. on tmpfs, to see its CPU ceiling),
# CARGO_TARGET_DIR is honoured as cargo does.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=smtp.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$root/bench/lib.sh"
messages=${MESSAGES:-20000}
sessions=${SESSIONS:-20}
size=${SIZE:-4096}
runs=${RUNS:-3}
latency_messages=$((messages / 10))

"$root/scripts/ensure-packages" postfix:smtp-source postfix:smtp-sink python3:python3
bench_work smtp

# Seconds for one smtp-source run against PORT with extra smtp-source options.
timed_source() {
    local port=$1; shift
    python3 - "$@" "127.0.0.1:$port" <<'PY'
import subprocess, sys, time
start = time.monotonic()
subprocess.run(["smtp-source", *sys.argv[1:]], check=True, stdout=subprocess.DEVNULL)
print(f"{time.monotonic() - start:.3f}")
PY
}

echo "==> building mailgw (release)"
bench_build
start_sink
start_postfix
start_mailgw

load=(-s "$sessions" -m "$messages" -l "$size" -f sender@client.example -t rcpt@remote.example)
one=(-s 1 -m "$latency_messages" -l "$size" -f sender@client.example -t rcpt@remote.example)

echo "==> $runs runs each: smtp-source ${load[*]}"
declare -A rate latency
for target in sink postfix mailgw; do
    case $target in
        sink) port=$sink_port ;;
        postfix) port=$pf_port ;;
        mailgw) port=$mg_port ;;
    esac
    seconds=$(for _ in $(seq "$runs"); do timed_source "$port" "${load[@]}"; done | median)
    rate[$target]=$(python3 -c "print(f'{$messages / $seconds:.0f}')")
    single=$(for _ in $(seq "$runs"); do timed_source "$port" "${one[@]}"; done | median)
    latency[$target]=$(python3 -c "print(f'{$single / $latency_messages * 1000:.3f}')")
done

# Memory per idle session: RSS of mailgw with 1,000 sessions that only read
# the greeting, against none.
idle=$(python3 - "$mg_pid" "$mg_port" <<'PY'
import socket, sys, time
pid, port = int(sys.argv[1]), int(sys.argv[2])
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
before = rss()
conns = []
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(512)
    conns.append(s)
time.sleep(0.5)
after = rss()
for s in conns:
    s.close()
print(f"{(after - before) / 1000 / 1024:.1f}")
PY
)

echo
echo "command: bench/smtp.sh (MESSAGES=$messages SESSIONS=$sessions SIZE=$size RUNS=$runs)"
echo "machine: $(nproc) cores, $(uname -r), postfix $(postconf -d -h mail_version)"
printf '%-32s %14s %18s\n' "" "messages/s" "ms/message (-s 1)"
for target in sink postfix mailgw; do
    printf '%-32s %14s %18s\n' "$target" "${rate[$target]}" "${latency[$target]}"
done
python3 - "${rate[sink]}" "${rate[postfix]}" "${rate[mailgw]}" "$idle" <<'PY'
import sys
sink, postfix, mailgw, idle = (float(x) for x in sys.argv[1:])
def verdict(ok): return "ok" if ok else "MISSED"
print("targets:")
print(f"  mailgw / postfix accept rate   {mailgw / postfix:7.2f}  >= 1.5   {verdict(mailgw / postfix >= 1.5)}")
print(f"  mailgw / sink ceiling          {mailgw / sink:7.2f}  >= 0.5   {verdict(mailgw / sink >= 0.5)}")
print(f"  KiB per idle session           {idle:7.1f}  < 64     {verdict(idle < 64)}")
PY
