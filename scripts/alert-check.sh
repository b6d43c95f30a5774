#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Alerting end to end on this host's real CPU: a rule `cpu > 50` with
# for = "3s", a cooldown of a minute, and the four channel types: mail to
# mailpit, a real Alertmanager, a webhook receiver, and a Slack endpoint
# that is down. Both cores are burnt for BURN seconds, then left idle.
# Prints when each notification came, relative to the burn's start, and
# what `crmon alerts test` says. Needs make deps (mailpit, Alertmanager).
#
#   make build && scripts/alert-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BIN:-./crmon}")
BURN=${BURN:-20}
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }
MAILPIT=$(go env GOPATH)/bin/mailpit
[[ -x $MAILPIT ]] || MAILPIT=$(command -v mailpit) || { echo "mailpit missing: make deps" >&2; exit 1; }
command -v prometheus-alertmanager >/dev/null || { echo "prometheus-alertmanager missing: make deps" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=$(port) mailapi=$(port) am=$(port) hook=$(port) down=$(port)

"$MAILPIT" --smtp "127.0.0.1:$smtp" --listen "127.0.0.1:$mailapi" --database "$dir/mail.db" \
	--smtp-auth-accept-any --smtp-auth-allow-insecure --disable-version-check >"$dir/mailpit.log" 2>&1 &
pids+=($!)
printf 'route:\n  receiver: none\nreceivers:\n  - name: none\n' >"$dir/am.yml"
prometheus-alertmanager --config.file "$dir/am.yml" --storage.path "$dir/am" \
	--web.listen-address "127.0.0.1:$am" --cluster.listen-address= >"$dir/am.log" 2>&1 &
pids+=($!)
HOOK_LOG=$dir/hook.log python3 -c '
import http.server, json, os, time
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        b = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(os.environ["HOOK_LOG"], "a") as f:
            f.write("%.3f %s\n" % (time.time(), b["status"]))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", '"$hook"'), H).serve_forever()' &
pids+=($!)

cat >"$dir/crmon.toml" <<TOML
[cleanroom.monitoring]
collection_interval = "1s"
[cleanroom.monitoring.thresholds]
cpu_usage_percent = 0
memory_usage_percent = 0
disk_usage_percent = 0
network_bandwidth_percent = 0
container_count = 0
process_count = 0
[cleanroom.monitoring.store]
path = "$dir/data"
[cleanroom.monitoring.alerting]
cooldown_period = "1m"
[[cleanroom.monitoring.alerting.alert_channels]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = $smtp
from = "crmon@example.com"
to = ["oncall@example.com"]
[[cleanroom.monitoring.alerting.alert_channels]]
name = "alertmanager"
type = "alertmanager"
url = "http://127.0.0.1:$am"
[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:$hook/hook"
[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url = "http://127.0.0.1:$down/services/T/B/down"
[[cleanroom.monitoring.alerting.alert_rules]]
name = "HighCPU"
resource = "cpu"
threshold = 50
for = "3s"
severity = "critical"
TOML
until curl -sf -o /dev/null "http://127.0.0.1:$mailapi/readyz" && curl -sf -o /dev/null "http://127.0.0.1:$am/-/ready"; do sleep 0.1; done
"$BIN" run --config "$dir/crmon.toml" --web.listen-address 127.0.0.1:0 --control.socket "" >"$dir/agent.log" 2>&1 &
pids+=($!)
sleep 3

t0=$(date +%s.%N)
timeout "$BURN" sh -c 'yes >/dev/null & yes >/dev/null & wait' || true
t1=$(date +%s.%N)
in_am=$(curl -s "http://127.0.0.1:$am/api/v2/alerts" | python3 -c 'import json,sys; print(len([a for a in json.load(sys.stdin) if a["labels"]["alertname"]=="HighCPU"]))')
sleep 10

echo "burn: both cores, $BURN s; times from its start"
printf 'burn ended               %+.1f s\n' "$(echo "$t1 - $t0" | bc)"
echo "Alertmanager held HighCPU at the burn's end: $in_am"
curl -s "http://127.0.0.1:$mailapi/api/v1/messages" | T0=$t0 python3 -c '
import json, os, sys, datetime
t0 = float(os.environ["T0"])
for m in reversed(json.load(sys.stdin)["messages"]):
    t = datetime.datetime.fromisoformat(m["Created"].replace("Z", "+00:00")).timestamp()
    print("mail      %+6.1f s  %s" % (t - t0, m["Subject"]))'
while read -r t status; do
	printf 'webhook   %+6.1f s  %s\n' "$(echo "$t - $t0" | bc)" "$status"
done <"$dir/hook.log"
grep -c 'channel=slack' "$dir/agent.log" | sed 's/^/slack: failed attempts logged: /'
echo
"$BIN" alerts test --config "$dir/crmon.toml" --timeout 3s || echo "(exit $?)"
