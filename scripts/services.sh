#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up on this machine: PostgreSQL on
# 127.0.0.1:5432 (database `test`), NATS with JetStream on 127.0.0.1:4222, Redis on 6379.
# Starts whichever is down, with the same commands the machine image uses.
set -euo pipefail

# Installs a Debian package when its command is missing and we may (root with apt-get).
need() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $pkg" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  fi
}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do up "$port" && return 0; sleep 0.1; done
  echo "error: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

up 5432 || need pg_ctlcluster postgresql
up 4222 || need /usr/sbin/nats-server nats-server

if ! up 5432; then
  echo "starting PostgreSQL" >&2
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  else
    echo "error: PostgreSQL is not running and pg_ctlcluster is missing (apt-get install postgresql)" >&2
    exit 1
  fi
  wait_for 5432 PostgreSQL
fi

if ! up 4222; then
  echo "starting NATS (JetStream)" >&2
  if [ -x /usr/sbin/nats-server ]; then
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  else
    echo "error: NATS is not running and nats-server is missing (apt-get install nats-server)" >&2
    exit 1
  fi
  wait_for 4222 NATS
fi

if ! up 6379 && command -v redis-server >/dev/null; then
  echo "starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi
