#!/bin/bash
# Takes docs/screenshot-*.png of the real app under Xvfb with trayer as the tray host.
# Needs: Xvfb trayer xdotool imagemagick python3 curl. Usage: tests/ui/take_screenshots.sh [build-dir]
# KEYRELAY_SHOT_SET=key-states takes only the key state, usage, settings-security and log-key-events shots;
# KEYRELAY_SHOT_SET=providers only the providers, keys-providers and log-providers shots.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-gui}
OUT=$ROOT/docs
WORK=$(mktemp -d /tmp/keyrelay-shots.XXXXXX)
DISPLAY_NUM=${KEYRELAY_SHOT_DISPLAY:-:99}
MOCK_PORT=${KEYRELAY_SHOT_MOCK_PORT:-18555}
LISTEN_PORT=${KEYRELAY_SHOT_PORT:-9000}
SHOT_SET=${KEYRELAY_SHOT_SET:-all}
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export DISPLAY=$DISPLAY_NUM

make_home() { # $1 = home, $2 = listen port
    mkdir -p "$1/.config/KeyRelay" "$1/run"; chmod 700 "$1/run"
    printf '[meta]\nsettingsVersion=1\n\n[proxy]\nlistenHost=127.0.0.1\nlistenPort=%s\nupstream=http://127.0.0.1:%s\n' \
        "$2" "$MOCK_PORT" > "$1/.config/KeyRelay/KeyRelay.ini"
    cat > "$1/.config/KeyRelay/keys.json" <<'KEYS'
{"version":1,"keys":[
{"secret":"sk-proj-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2","label":"Personal","enabled":true},
{"secret":"sk-proj-f00dbabe0000111122223333444455556666777788","label":"Team shared","enabled":true},
{"secret":"sk-proj-bad0000000000000000000000000000000000dead","label":"","enabled":true},
{"secret":"sk-proj-9999888877776666555544443333222211110000aa","label":"Spare","enabled":false}
]}
KEYS
    chmod 600 "$1/.config/KeyRelay/keys.json"
}
start_app() { # $1 = home, $2 = LANG
    env HOME="$1" XDG_CONFIG_HOME="$1/.config" XDG_RUNTIME_DIR="$1/run" LANG="$2" LANGUAGE= LC_ALL= \
        "$BUILD/app/keyrelay" > "$1/app.log" 2>&1 &
    APP=$!; PIDS+=("$APP"); sleep 3
}
req() { curl -s -o /dev/null http://127.0.0.1:$LISTEN_PORT$1 -H 'Content-Type: application/json' -H 'Authorization: Bearer x' -d "$2" || true; }
traffic() {
    for i in 1 2 3 4 5 6; do
        model=gpt-4o-mini; [ $((i % 3)) = 0 ] && model=gpt-4o
        req /v1/chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi $i\"}]}"
    done
    req /v1/chat/completions '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"stream"}]}'
    req /v1/embeddings '{"model":"text-embedding-4","input":"x"}'
    req /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream"}]}'
    curl -s -o /dev/null http://127.0.0.1:$LISTEN_PORT/v1/models || true
    req /v1/chat/completions '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bye"}]}'
}
quit_app() { # the tray menu's last entry, "Quit KeyRelay"
    xdotool mousemove 1268 12 click 3; sleep 0.7; xdotool mousemove 1230 92 click 1; sleep 1.5
    if kill -0 "$APP" 2>/dev/null; then echo "warning: the app did not quit from the tray menu" >&2; kill "$APP"; sleep 1; fi
}
shoot() { sleep 0.7; import -window root "$OUT/screenshot-$1.png"; }
shoot_window() { # $1 = name, $2 = WxH: the main window at the top left corner, tooltips included
    sleep 0.7; import -window root -crop "$2+0+0" +repage "$OUT/screenshot-$1.png"; }
main_window() { xdotool search --onlyvisible --name '^KeyRelay$' | head -1; }

python3 "$ROOT/tests/ui/screenshot_mock_upstream.py" "$MOCK_PORT" & PIDS+=($!)
Xvfb "$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp & PIDS+=($!)
sleep 1
trayer --edge top --align right --widthtype request --height 24 --transparent false --tint 0x303030 & PIDS+=($!)
sleep 1

if [ "$SHOT_SET" = all ]; then
# English: every page, a key test, and the tray menu.
make_home "$WORK/en" "$LISTEN_PORT"
start_app "$WORK/en" en_US.UTF-8
traffic
sleep 11 # let the "key stopped working" balloon time out
xdotool mousemove 735 195 click 1; sleep 0.3; xdotool mousemove 735 255 click 1; sleep 1.5; xdotool mousemove 600 500
shoot keys
xdotool mousemove 83 64 click 1; shoot log
xdotool mousemove 143 64 click 1; shoot settings
xdotool mousemove 1268 12 click 3; shoot tray-menu; xdotool key Escape
quit_app

# The port is taken: the status line, the tray icon and a balloon say so.
make_home "$WORK/busy" "$MOCK_PORT"
start_app "$WORK/busy" en_US.UTF-8
shoot notification
sleep 10
shoot port-in-use
quit_app

# Simplified Chinese.
make_home "$WORK/zh" "$LISTEN_PORT"
start_app "$WORK/zh" zh_CN.UTF-8
traffic
sleep 11
xdotool mousemove 600 500 key alt+l; shoot log-zh_CN
xdotool key alt+s; shoot settings-zh_CN
quit_app
fi

# Providers (issue 17): the single upstream carried over as "default", DeepSeek unreachable and falling back
# to Groq, Groq with a key of its own (keys-groq.json: no keychain here, the owner-only files).
if [ "$SHOT_SET" = all ] || [ "$SHOT_SET" = providers ]; then
make_home "$WORK/prov" "$LISTEN_PORT"
cat >> "$WORK/prov/.config/KeyRelay/KeyRelay.ini" <<INI

[providers]
order=default, deepseek, groq

[provider.default]
name=Settings upstream
baseUrl=http://127.0.0.1:$MOCK_PORT

[provider.deepseek]
name=DeepSeek
baseUrl=http://127.0.0.1:9
models=deepseek-*
aliases=fast=deepseek-chat, think=deepseek-reasoner
fallback=groq

[provider.groq]
name=Groq
baseUrl=http://127.0.0.1:$MOCK_PORT/groq/v1
models=llama-*, gemma2-*
INI
cat > "$WORK/prov/.config/KeyRelay/keys-groq.json" <<'KEYS'
{"version":1,"keys":[{"secret":"gsk_5a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f","label":"Groq free tier","enabled":true}]}
KEYS
chmod 600 "$WORK/prov/.config/KeyRelay/keys-groq.json"
start_app "$WORK/prov" en_US.UTF-8
for model in gpt-4o-mini fast llama-3.3-70b-versatile gpt-4o deepseek-chat gemma2-9b-it; do
    req /v1/chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
    sleep 0.3
done
sleep 1; xdotool mousemove 600 500
xdotool key alt+p; sleep 0.5
xdotool mousemove ${KEYRELAY_SHOT_GROQ_ROW:-60 121} click 1; sleep 0.3
xdotool key alt+e; sleep 1.5; xdotool mousemove 700 780
shoot_window providers 1100x700
xdotool key alt+k; sleep 0.3; xdotool key alt+v; sleep 0.2; xdotool key Down Down; sleep 0.5; xdotool mousemove 700 780
shoot_window keys-providers 1100x700
xdotool key alt+l; xdotool windowsize "$(main_window)" 1250 700; sleep 1; xdotool mousemove 700 780
shoot_window log-providers 1250x700
xdotool windowsize "$(main_window)" 1100 700
quit_app
fi

# Key states: the mock answers per key (see screenshot_mock_upstream.py); 29 days of usage before today
# are written into usage.sqlite, today's come from the requests.
make_states_home() { # $1 = home
    make_home "$1" "$LISTEN_PORT"
    python3 - "$1/.config/KeyRelay" <<'SEED'
import datetime, hashlib, json, os, random, sqlite3, sys
folder = sys.argv[1]
keys = [("sk-proj-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2", "Personal", True),
        ("sk-proj-f00dbabe0000111122223333444455556666777788", "Team shared", True),
        ("sk-proj-b0b0b0b0c1c1c1c1d2d2d2d2e3e3e3e3f4f4f4f4a5a5", "Burst", True),
        ("sk-proj-7e57000011112222333344445555666677778888beef", "Trial", True),
        ("sk-proj-9999888877776666555544443333222211110000aa", "Spare", False),
        ("sk-proj-bad0000000000000000000000000000000000dead", "Old project", True)]
with open(folder + "/keys.json", "w") as f:
    json.dump({"version": 1, "keys": [{"secret": s, "label": l, "enabled": e} for s, l, e in keys]}, f)
os.chmod(folder + "/keys.json", 0o600)
db = sqlite3.connect(folder + "/usage.sqlite")
db.executescript("""
CREATE TABLE usage_daily (day TEXT NOT NULL, key_id TEXT NOT NULL, key_label TEXT NOT NULL DEFAULT '',
 model TEXT NOT NULL DEFAULT '', requests INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,
 completion_tokens INTEGER NOT NULL DEFAULT 0, total_tokens INTEGER NOT NULL DEFAULT 0,
 PRIMARY KEY (day, key_id, model)) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;""")
today = datetime.date.today()
created = datetime.datetime.now() - datetime.timedelta(days=29, hours=3)
db.execute("INSERT INTO meta VALUES ('created', ?)", (created.isoformat(timespec="milliseconds"),))
rnd = random.Random(7)
for back in range(29, 0, -1):
    date = today - datetime.timedelta(days=back)
    for secret, label, enabled in keys:
        if not enabled or (label == "Burst" and back > 10) or (label == "Old project" and back < 12) \
                or (label == "Trial" and back < 4):
            continue
        share = {"Personal": 1.0, "Team shared": 0.8, "Old project": 0.35, "Burst": 0.5, "Trial": 0.25}[label]
        share *= 0.3 if date.weekday() >= 5 else 1
        if rnd.random() < 0.15:
            continue
        for model, model_share in (("gpt-4o-mini", 1.0), ("gpt-4o", 0.45)):
            requests = int(rnd.randint(2, 14) * share * model_share)
            if requests == 0:
                continue
            prompt = requests * rnd.randint(900, 3200)
            completion = int(prompt * rnd.uniform(0.12, 0.35))
            key_id = "k" + hashlib.sha256(secret.encode()).hexdigest()[:12]  # KeyPool::keyId()
            db.execute("INSERT INTO usage_daily VALUES (?,?,?,?,?,?,?,?)",
                       (date.isoformat(), key_id, label, model, requests, prompt, completion, prompt + completion))
db.commit()
SEED
}
states_traffic() {
    local prompts=("Summarise this meeting" "Translate to French: good morning" "Write a haiku about rain"
        "Explain TCP slow start" "Fix this SQL query" "List five prime numbers" "What is a monad?"
        "Draft a polite reminder email" "Name three Qt widgets" "Convert 5 miles to km" "Why is the sky blue?"
        "Sort these words")
    for i in $(seq 0 11); do
        model=gpt-4o-mini; [ $((i % 3)) = 0 ] && model=gpt-4o
        stream=false; [ $((i % 4)) = 2 ] && stream=true
        req /v1/chat/completions "{\"model\":\"$model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"${prompts[$i]}\"}]}"
        sleep 0.4
    done
    req /v1/embeddings '{"model":"text-embedding-4","input":"x"}'
    curl -s -o /dev/null http://127.0.0.1:$LISTEN_PORT/v1/models || true
    for i in 1 2 3 4; do
        req /v1/chat/completions "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"follow-up $i\"}]}"
        sleep 0.3
    done
}
[ "$SHOT_SET" = providers ] && { echo "screenshots in $OUT"; exit 0; }
make_states_home "$WORK/states"
start_app "$WORK/states" en_US.UTF-8
states_traffic
sleep 60 # the three "key stopped working" balloons time out (one after the other)
# 3 of 5 keys cannot be used: the status line's second row ("with problems") moves the page down by 20 px.
xdotool mousemove 330 365; sleep 2.5 # the invalid key's state: its tooltip shows the upstream's reason
shoot_window key-states 1100x700
xdotool key alt+u; xdotool windowsize "$(main_window)" 1100 760; sleep 1; xdotool mousemove 700 780
shoot_window usage 1100x760
xdotool windowsize "$(main_window)" 1100 700; xdotool key alt+s; sleep 0.5
xdotool mousemove 1081 400; for i in 1 2 3 4 5 6 7 8; do xdotool click 5; sleep 0.1; done # over the scroll bar
xdotool mousemove 700 780; shoot_window settings-security 1100x700
curl -s -o /dev/null -X POST -d '{}' http://127.0.0.1:$MOCK_PORT/__mock/heal
for i in $(seq 330); do # the background re-check ([health] recheckInvalidSec, 300 s) finds the key working again
    grep -q "key Old project works again" "$WORK/states/app.log" && break; sleep 1
done
sleep 11 # its balloon times out
for i in 1 2 3; do
    req /v1/chat/completions "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"after recovery $i\"}]}"
    sleep 0.5
done
xdotool key alt+l; xdotool windowsize "$(main_window)" 1250 700; sleep 1; xdotool mousemove 700 780
shoot_window log-key-events 1250x700
xdotool windowsize "$(main_window)" 1100 700
quit_app
echo "screenshots in $OUT"
