#!/usr/bin/env bash
# Make sure PostgreSQL, RabbitMQ and Redis answer on localhost, starting only what
# does not (TESTING.md). Idempotent: a second run changes nothing.
set -euo pipefail

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_for() {  # port, name, seconds
  for _ in $(seq 1 "$3"); do answers "$1" && return 0; sleep 1; done
  echo "ensure-services: $2 did not answer on 127.0.0.1:$1 after $3 s" >&2
  return 1
}

if ! answers 5432; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for 5432 PostgreSQL 30
fi

if ! answers 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmqctl await_startup --timeout 60 >/dev/null
  wait_for 5672 RabbitMQ 60
fi

if ! answers 6379; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for 6379 Redis 10
fi

# The tests' database must exist (trust auth, user postgres).
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null
fi
echo "ensure-services: PostgreSQL, RabbitMQ and Redis answer"
