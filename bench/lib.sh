# shellcheck shell=bash
# Shell helpers shared by the benchmarks (bench/smtp.sh, bench/relay.sh, and
# the port and median helpers for bench/proxy.sh):
# a work directory removed on exit, loopback ports, smtp-sink, a private
# Postfix instance relaying to the sink, and mailgw with the equivalent
# configuration. Source it after setting `root` (the workspace) and `bench`
# (the script's name, for messages); it sets `target_dir` as cargo does.

bench=${bench:-$(basename "$0")}
target_dir=${CARGO_TARGET_DIR:-$root/target}
export PATH="$PATH:/usr/sbin:/sbin"
bench_pids=()

bench_fail() {
    echo "$bench: $*" >&2
    exit 1
}

# Makes the work directory `work` (world-readable: Postfix's daemons and the
# sink run as `postfix`). On exit everything started here is stopped and the
# directory removed, unless KEEP=1.
bench_work() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/mailgw-$1-bench.XXXXXX")
    chmod 755 "$work"
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n ${pf:-} ]]; then postfix -c "$pf/etc" stop >/dev/null 2>&1 || true; fi
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$work"; else echo "$bench: kept $work" >&2; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    bench_fail "nothing listens on port $1"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Builds `mailgw` in release mode, and the bench crate's binaries named.
# shellcheck disable=SC2120 # the binaries are optional
bench_build() {
    cargo build --release -q -p mailgw-runtime --bin mailgw --manifest-path "$root/Cargo.toml"
    local bin
    for bin in "$@"; do
        cargo build --release -q -p mailgw-bench --bin "$bin" --manifest-path "$root/Cargo.toml"
    done
}

# Starts smtp-sink on a free loopback port with the extra OPTIONS given
# (backlog 1000): sets `sink_port` and `sink_pid`; its stdout goes to
# $work/sink.out.
# shellcheck disable=SC2120 # the options are optional
start_sink() {
    sink_port=$(free_port)
    smtp-sink "$@" -u postfix "127.0.0.1:$sink_port" 1000 >"$work/sink.out" 2>"$work/sink.err" &
    sink_pid=$!
    bench_pids+=("$sink_pid")
    wait_port "$sink_port"
}

# Starts a private Postfix instance in $work/postfix (config, queue and log of
# its own) whose smtpd listens on a free loopback port and which relays
# everything to the sink: sets `pf` (its directory) and `pf_port`. Apart from
# what a private instance needs, every setting is Postfix's default
# (default_process_limit is written out: 100, enough for 20 sessions plus
# 20 deliveries).
start_postfix() {
    pf_port=$(free_port)
    pf=$work/postfix
    mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
    chown postfix "$pf/data"
    cp /etc/postfix/master.cf "$pf/etc/master.cf"
    sed -i "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$pf_port inet n - n - - smtpd/" "$pf/etc/master.cf"
    grep -q "^127.0.0.1:$pf_port inet" "$pf/etc/master.cf" || bench_fail "could not set Postfix's smtpd port"
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
    # Postfix waits for a freshly written main.cf to settle.
    touch -d '1 minute ago' "$pf/etc/main.cf"
    postfix -c "$pf/etc" set-permissions >/dev/null 2>&1 || true
    if ! postfix -c "$pf/etc" start >/dev/null 2>&1; then
        cat "$pf/maillog" >&2 2>/dev/null
        bench_fail "Postfix did not start"
    fi
    wait_port "$pf_port"
}

# Messages in the Postfix instance's queue (all of them: incoming, active,
# deferred, hold).
postfix_queued() {
    postqueue -c "$pf/etc" -p | awk '
        /Mail queue is empty/ { print 0; exit }
        /^-- .* in [0-9]+ Requests?\./ { for (i = 1; i < NF; i++) if ($i == "in") print $(i + 1); exit }'
}

# Stops the Postfix instance (it is not started again).
stop_postfix() {
    postfix -c "$pf/etc" stop >/dev/null 2>&1 || true
    pf=
}

# Starts mailgw with the configuration equivalent to the Postfix instance's:
# one SMTP listener on a free loopback port without TLS or AUTH, relaying
# for 127.0.0.0/8 to the sink, its spool in SPOOL (default
# $work/mailgw-spool). Sets `mg_port`, `mg_pid` and `mg_spool`.
start_mailgw() {
    mg_port=$(free_port)
    mg_spool=${SPOOL:-$work/mailgw-spool}
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
queue { spool "$mg_spool" }
log { level warn }
EOF
    "$target_dir/release/mailgw" run "$work/bench.mailgw" 2>"$work/mailgw.log" &
    mg_pid=$!
    bench_pids+=("$mg_pid")
    wait_port "$mg_port"
}
