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
messages=${MESSAGES:-20000}
sessions=${SESSIONS:-20}
size=${SIZE:-4096}
runs=${RUNS:-3}
latency_messages=$((messages / 10))
target_dir=${CARGO_TARGET_DIR:-$root/target}

"$root/scripts/ensure-packages" postfix:smtp-source postfix:smtp-sink python3:python3
export PATH="$PATH:/usr/sbin:/sbin"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailgw-smtp-bench.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    postfix -c "$work/postfix/etc" stop >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$work"; else echo "smtp.sh: kept $work" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "smtp.sh: nothing listens on port $1" >&2
    return 1
}
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
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "==> building mailgw (release)"
cargo build --release -q -p mailgw-runtime --bin mailgw --manifest-path "$root/Cargo.toml"

sink_port=$(free_port)
smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 >/dev/null 2>&1 &
pids+=($!)
wait_port "$sink_port"

# Postfix: a private instance on loopback, relaying everything to the sink.
pf_port=$(free_port)
pf=$work/postfix
mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
chown postfix "$pf/data"
cp /etc/postfix/master.cf "$pf/etc/master.cf"
sed -i "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$pf_port inet n - n - - smtpd/" "$pf/etc/master.cf"
grep -q "^127.0.0.1:$pf_port inet" "$pf/etc/master.cf" || { echo "smtp.sh: could not set Postfix's smtpd port" >&2; exit 1; }
cat >"$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/spool
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.example
mydestination =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$sink_port
smtp_dns_support_level = disabled
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_process_limit = 100
maillog_file = $pf/maillog
maillog_file_prefixes = $work
EOF
touch -d '1 minute ago' "$pf/etc/main.cf"
postfix -c "$pf/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$pf/etc" start >/dev/null 2>&1 || { cat "$pf/maillog" >&2 2>/dev/null; echo "smtp.sh: Postfix did not start" >&2; exit 1; }
wait_port "$pf_port"

# mailgw: the equivalent configuration.
mg_port=$(free_port)
cat >"$work/bench.mailgw" <<EOF
gateway { hostname "bench.example"; postmaster "postmaster@bench.example" }
listener "mx" {
    protocol smtp
    bind     127.0.0.1:$mg_port
    tls      none
    auth     off
    max-connections 2000
    max-per-client  2000
}
connector "sink" {
    address-space "*" cost 1
    deliver smarthost 127.0.0.1:$sink_port tls none
}
relay { allow from 127.0.0.0/8; deny all }
queue { spool "${SPOOL:-$work/mailgw-spool}" }
log { level warn }
EOF
"$target_dir/release/mailgw" run "$work/bench.mailgw" 2>"$work/mailgw.log" &
mg_pid=$!
pids+=("$mg_pid")
wait_port "$mg_port"

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
