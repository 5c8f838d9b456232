#!/usr/bin/env bash
# IMAP proxy benchmark: what the proxy itself costs, side by side in one run:
# Dovecot directly, through nginx's mail proxy (its auth endpoint served by
# nginx itself) and through mailgw, all on loopback, driven by
# bench/src/imap_load.rs. See bench/README.md for the targets.
#
#   bench/proxy.sh                 # defaults below
#   RUNS=5 bench/proxy.sh          # more repetitions (medians are reported)
#
# Environment: RUNS (3), LOGINS (2000 per run), NOOPS (20000), IDLE (5000
# connections held before login), SESSIONS (200 logged-in sessions held),
# FETCH_MB (10), KEEP=1 keeps the work directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$root/bench/lib.sh"
runs=${RUNS:-3}
logins=${LOGINS:-2000}
noops=${NOOPS:-20000}
idle=${IDLE:-5000}
sessions=${SESSIONS:-200}
fetch_mb=${FETCH_MB:-10}
users=100
password="bench-pw"

"$root/scripts/ensure-packages" dovecot-imapd:dovecot nginx-light:nginx libnginx-mod-mail python3:python3
export PATH="$PATH:/usr/sbin:/sbin"
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailgw-proxy-bench.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -f $work/nginx.pid ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
    doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$work"; else echo "proxy.sh: kept $work" >&2; fi
}
trap cleanup EXIT

# CPU ticks (user + system) of the processes PIDS, summed.
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s+=$1} END {print s+0}'; }
# Resident KiB of PIDS, summed.
rss_kib() { for p in "$@"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{s+=$1} END {print s+0}'; }
ticks_per_s=$(getconf CLK_TCK)

echo "==> building mailgw and imap-load (release)"
cargo build --release -q -p mailgw-runtime --bin mailgw --manifest-path "$root/Cargo.toml"
cargo build --release -q -p mailgw-bench --bin imap-load --manifest-path "$root/Cargo.toml"
load="$target_dir/release/imap-load"

echo "==> Dovecot"
dc=$work/dovecot
mkdir -p "$dc/mail"
chmod 777 "$dc/mail"
hash=$(doveadm pw -s SHA512-CRYPT -p "$password")
for i in $(seq 0 $((users - 1))); do echo "bench$i:$hash"; done >"$dc/passwd"
dovecot_port=$(free_port)
cat >"$dc/dovecot.conf" <<EOF
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/dovecot.log
ssl = no
listen = 127.0.0.1
protocols = imap
disable_plaintext_auth = no
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:$dc/mail/%u
mail_max_userip_connections = 10000
passdb {
  driver = passwd-file
  args = $dc/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dc/mail/%u
}
service imap-login {
  inet_listener imap {
    port = $dovecot_port
  }
}
service imap {
  process_limit = 2048
}
EOF
# bench0's INBOX holds the FETCH_MB message.
mkdir -p "$dc/mail/bench0/new" "$dc/mail/bench0/cur" "$dc/mail/bench0/tmp"
python3 - "$dc/mail/bench0/new/1.big" "$fetch_mb" <<'PY'
import sys
line = b"0123456789abcdef" * 4 + b"\r\n"
size = int(sys.argv[2]) * 1024 * 1024
with open(sys.argv[1], "wb") as f:
    f.write(b"Subject: big\r\n\r\n" + line * (size // len(line)))
PY
chmod -R 777 "$dc/mail"
dovecot -c "$dc/dovecot.conf"
wait_port "$dovecot_port"

echo "==> nginx mail proxy"
nginx_port=$(free_port)
auth_port=$(free_port)
cat >"$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes auto;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 20000; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$auth_port;
        location /auth {
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $dovecot_port;
            return 204;
        }
    }
}
mail {
    server_name localhost;
    auth_http 127.0.0.1:$auth_port/auth;
    proxy_pass_error_message on;
    imap_auth login plain;
    server {
        listen 127.0.0.1:$nginx_port;
        protocol imap;
    }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"
wait_port "$nginx_port"
nginx_pids() { echo "$(cat "$work/nginx.pid") $(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')"; }

echo "==> mailgw"
mailgw_port=$(free_port)
{
    for i in $(seq 0 $((users - 1))); do
        printf '[[mailbox]]\nname = "bench%d"\nbackend = "dovecot"\naddresses = ["bench%d@bench.test"]\n\n' "$i" "$i"
    done
} >"$work/users.toml"
cat >"$work/gw.mailgw" <<EOF
gateway { hostname "bench.test" }
listener "imap" {
    protocol        imap
    bind            127.0.0.1:$mailgw_port
    max-connections 20000
    max-per-client  20000
}
backend "dovecot" { host "127.0.0.1"; imap $dovecot_port; lmtp 24 }
domain "bench.test" local
directory "users.toml"
auth { verify backend imap }
queue { spool "spool" }
log { level warn }
EOF
"$target_dir/release/mailgw" run "$work/gw.mailgw" 2>"$work/mailgw.log" &
mailgw_pid=$!
pids+=("$mailgw_pid")
wait_port "$mailgw_port"

declare -A port=([direct]=$dovecot_port [nginx]=$nginx_port [mailgw]=$mailgw_port)
proxy_pids() {
    case $1 in
        nginx) nginx_pids ;;
        mailgw) echo "$mailgw_pid" ;;
        *) echo "" ;;
    esac
}

declare -A cpu lps p50 p99 mbps idle_b session_b
for run in $(seq "$runs"); do
    echo "==> run $run of $runs"
    for path in direct nginx mailgw; do
        p=${port[$path]}
        # shellcheck disable=SC2046
        read -ra procs <<<"$(proxy_pids $path)"
        # Memory first and in the first run only: the processes are fresh, so
        # the growth is what the connections cost, not memory freed by the
        # load phases and reused.
        if [[ $run == 1 && ${#procs[@]} -gt 0 ]]; then
            for kind in idle session; do
                if [[ $kind == idle ]]; then count=$idle; extra=(); else count=$sessions; extra=(login "$users" "$password"); fi
                read -ra procs <<<"$(proxy_pids $path)"
                rss_before=$(rss_kib "${procs[@]}")
                fifo=$work/hold.$path.$kind
                rm -f "$fifo"
                mkfifo "$fifo"
                "$load" hold "$p" "$count" "${extra[@]}" <"$fifo" >"$fifo.out" &
                holder=$!
                exec 9>"$fifo"
                for _ in $(seq 600); do grep -q held "$fifo.out" 2>/dev/null && break; sleep 0.1; done
                sleep 1
                read -ra procs <<<"$(proxy_pids $path)"
                rss_after=$(rss_kib "${procs[@]}")
                echo >&9
                exec 9>&-
                wait "$holder"
                per=$(awk -v a="$rss_after" -v b="$rss_before" -v n="$count" 'BEGIN {printf "%.0f", (a-b)*1024/n}')
                if [[ $kind == idle ]]; then idle_b[$path]+="$per "; else session_b[$path]+="$per "; fi
                sleep 1
            done
        fi
        before=0
        [[ ${#procs[@]} -gt 0 ]] && before=$(cpu_ticks "${procs[@]}")
        out=$("$load" logins "$p" "$users" "$password" "$logins" 8)
        lps[$path]+="$(awk '{print $2}' <<<"$out") "
        if [[ ${#procs[@]} -gt 0 ]]; then
            after=$(cpu_ticks "${procs[@]}")
            cpu[$path]+="$(awk -v a="$after" -v b="$before" -v t="$ticks_per_s" -v n="$logins" 'BEGIN {printf "%.3f", (a-b)/t/n*1000}') "
        fi
        out=$("$load" noop "$p" bench1 "$password" "$noops")
        p50[$path]+="$(awk '/p50/ {print $2}' <<<"$out") "
        p99[$path]+="$(awk '/p99/ {print $2}' <<<"$out") "
        out=$("$load" fetch "$p" bench0 "$password" 5)
        mbps[$path]+="$(awk '{print $2}' <<<"$out") "
    done
done

m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a/b}'; }
verdict() { awk -v v="$1" -v lim="$2" 'BEGIN {print (v <= lim) ? "ok" : "MISSED"}'; }

echo
echo "IMAP proxy benchmark: $runs runs, medians; $logins logins (8 at once, $users users),"
echo "$noops NOOPs, ${fetch_mb} MB FETCH, $idle connections held before login, $sessions logged-in sessions."
printf '%-8s %12s %16s %10s %10s %10s %14s %16s\n' path logins/s "cpu s/1000 logins" "noop p50" "noop p99" "fetch MB/s" "B/idle conn" "B/proxied sess"
for path in direct nginx mailgw; do
    printf '%-8s %12s %16s %9sus %9sus %10s %14s %16s\n' "$path" "$(m "${lps[$path]}")" "$(m "${cpu[$path]:-}")" \
        "$(m "${p50[$path]}")" "$(m "${p99[$path]}")" "$(m "${mbps[$path]}")" "$(m "${idle_b[$path]:-}")" "$(m "${session_b[$path]:-}")"
done
d50=$(m "${p50[direct]}")
n_add=$(awk -v a="$(m "${p50[nginx]}")" -v d="$d50" 'BEGIN {print a-d}')
g_add=$(awk -v a="$(m "${p50[mailgw]}")" -v d="$d50" 'BEGIN {print a-d}')
cpu_ratio=$(ratio "$(m "${cpu[mailgw]}")" "$(m "${cpu[nginx]}")")
mem_ratio=$(ratio "$(m "${idle_b[mailgw]}")" "$(m "${idle_b[nginx]}")")
echo
echo "added NOOP latency at p50 over direct: nginx ${n_add}us, mailgw ${g_add}us"
echo "cpu per login mailgw/nginx      $cpu_ratio  (target < 1)     $(verdict "$cpu_ratio" 0.999)"
echo "added latency mailgw - nginx    $((g_add - n_add))us  (target < 0)   $(verdict "$g_add" "$((n_add - 1))")"
echo "memory per idle conn mailgw/nginx $mem_ratio (target <= 1)  $(verdict "$mem_ratio" 1)"
