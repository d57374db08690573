#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on localhost (the test
# suite needs all three: the end-to-end tests run on both brokers); starts
# them when they are installed but stopped, and says what to install when
# they are missing.
set -u

pg_host=127.0.0.1 pg_port=5432 redis_port=6379 amqp_port=5672

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }
redis_up() {
  if command -v redis-cli >/dev/null; then
    [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]
  else
    (exec 3<>/dev/tcp/127.0.0.1/$redis_port) 2>/dev/null
  fi
}

# RabbitMQ is up when it answers the AMQP handshake (not merely the port):
# the broker replies to the protocol header with connection.start.
amqp_up() {
  (
    exec 3<>/dev/tcp/127.0.0.1/$amqp_port || exit 1
    printf 'AMQP\x00\x00\x09\x01' >&3
    reply=$(timeout 3 head -c 11 <&3 | od -An -tx1 | tr -d ' \n')
    # A method frame (01) on channel 0 of class 10, method 10 (start).
    [ "${reply:0:6}" = 010000 ] && [ "${reply:14:8}" = 000a000a ]
  ) 2>/dev/null
}

wait_for() {
  local check=$1 tries=${2:-30} i
  for i in $(seq 1 "$tries"); do "$check" && return 0; sleep 1; done
  return 1
}

if ! pg_up; then
  if ls /etc/postgresql >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL is not answering; starting it..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
    wait_for pg_up || { echo "PostgreSQL did not start; see its log in /var/log/postgresql." >&2; exit 1; }
  else
    echo "PostgreSQL is not reachable on $pg_host:$pg_port and is not installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install postgresql) with trust auth for user postgres," >&2
    echo "or set DATABASE_URL to a PostgreSQL server you can use." >&2
    exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Redis is not answering; starting it..."
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for redis_up || { echo "Redis did not start; see /var/log/redis/ci.log." >&2; exit 1; }
  else
    echo "Redis is not reachable on 127.0.0.1:$redis_port and redis-server is not installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install redis-server)." >&2
    exit 1
  fi
fi
if ! amqp_up; then
  if command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not answering; starting it..."
    rabbitmq-server -detached
    if command -v rabbitmqctl >/dev/null; then
      timeout 90 rabbitmqctl await_startup >/dev/null 2>&1 || true
    fi
    wait_for amqp_up 60 || {
      echo "RabbitMQ did not start; see its log in /var/log/rabbitmq." >&2
      exit 1
    }
  else
    echo "RabbitMQ is not reachable on 127.0.0.1:$amqp_port and is not installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install rabbitmq-server; user guest" >&2
    echo "may log in from localhost), or set IMPORTHUB_TEST_AMQP_URL." >&2
    exit 1
  fi
fi
echo "PostgreSQL, Redis and RabbitMQ are up."
