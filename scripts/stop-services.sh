#!/usr/bin/env bash
# Stop what scripts/ensure-services.sh started in this checkout, and nothing else.
set -uo pipefail
state="${MLPLANE_STATE_DIR:-.ci/state}/started"
[ -f "$state" ] || exit 0
while read -r name pid; do
  case "$name" in
    postgresql) pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main stop ;;
    rabbitmq) rabbitmqctl stop >/dev/null 2>&1 ;;
    redis) redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 ;;
    seaweedfs)
      # SIGTERM can hang (TESTING.md): SIGKILL after a few seconds.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
      for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      ;;
    docker-registry)
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
      for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }
      ;;
  esac
  echo "stop-services: stopped $name"
done <"$state"
rm -f "$state"
