#!/usr/bin/env bash
# Database clusters on loopback for Roster's cluster tests, built from the
# machine's Debian packages and kept under one directory:
#
#   PostgreSQL 15   primary 5440, streaming replica 5441,
#                   delayed replica 5442 (recovery_min_apply_delay = 5s)
#   MariaDB Galera  three nodes, client ports 3311-3313, galera 4567-4569
#   PgBouncer       6432, transaction pooling (session pooling for the
#                   user roster_session), in front of the primary
#
# Usage:
#   scripts/cluster.sh up            start (or keep) everything; idempotent
#   scripts/cluster.sh down          stop everything, remove the directory
#   scripts/cluster.sh status        say what runs; non-zero if anything is down
#   scripts/cluster.sh env           shell exports for the tests:
#                                    eval "$(scripts/cluster.sh env)"
#   scripts/cluster.sh pg-pair DIR PRIMARY_PORT REPLICA_PORT
#                                    a throwaway primary + streaming replica
#                                    in DIR (a failover test promotes it)
#   scripts/cluster.sh pg-pair-down DIR
#
# Everything lives in ${ROSTER_CLUSTER_DIR:-/tmp/roster-cluster} and listens
# on 127.0.0.1 only; the machine's own PostgreSQL (5432) and MariaDB (3306)
# are never touched. These are TEST clusters: durability is switched off
# (fsync=off, innodb_flush_log_at_trx_commit=0) for speed; a crash loses data.
#
# Run as root (CI): PostgreSQL and PgBouncer run as the `postgres` system
# user, mariadbd as `mysql`. Run as another user, every process runs as that
# user.
set -euo pipefail

ROOT=${ROSTER_CLUSTER_DIR:-/tmp/roster-cluster}

# The newest installed PostgreSQL server (Debian installs them side by side).
PG_BIN=${ROSTER_PG_BIN:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)}
GALERA_PROVIDER=${ROSTER_GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}

PG_PRIMARY_PORT=5440
PG_REPLICA_PORT=5441
PG_DELAYED_PORT=5442
PG_DELAY=5s
GALERA_CLIENT_PORTS=(3311 3312 3313)
GALERA_GCOMM_PORTS=(4567 4568 4569)
# Galera's IST and rsync SST listen on the group port + 1 and 4444 by
# default: three nodes on one address need ports of their own.
GALERA_IST_PORTS=(4577 4578 4579)
GALERA_SST_PORTS=(4444 4445 4446)
PGBOUNCER_PORT=6432
# A PostgreSQL role PgBouncer pools in session mode (everyone else: transaction).
PGBOUNCER_SESSION_USER=roster_session

# ---------------------------------------------------------------- helpers

log() { printf 'cluster: %s\n' "$*" >&2; }

# Prints the tail of log file $1 (if any), then the message $2.., and exits.
fail() {
    local logfile=$1
    shift
    if [[ -n $logfile && -f $logfile ]]; then
        printf '\n--- last lines of %s ---\n' "$logfile" >&2
        tail -n 40 "$logfile" >&2 || true
        printf -- '---\n' >&2
    fi
    printf 'cluster: FAIL: %s\n' "$*" >&2
    exit 1
}

# Waits up to $1 seconds (checking every 0.2 s) for the command $2.. to succeed.
wait_until() {
    local seconds=$1
    shift
    local tries=$((seconds * 5))
    for ((i = 0; i < tries; i++)); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    "$@"
}

# Runs $@ as the system user $1 when we are root, else as ourselves.
as_user() {
    local user=$1
    shift
    if ((EUID == 0)); then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

# Makes directory $2 (and parents) owned by system user $1 when we are root.
own_dir() {
    local user=$1 dir=$2
    mkdir -p "$dir"
    if ((EUID == 0)); then chown "$user:" "$dir"; fi
}

# Whether something listens on 127.0.0.1:$1.
port_busy() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# Whether the pid in file $1 is a running process.
pid_alive() { [[ -f $1 ]] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }

# Sends TERM to the pid in file $1, waits up to $2 seconds, then KILLs.
stop_pidfile() {
    local pidfile=$1 seconds=$2 pid
    pid_alive "$pidfile" || return 0
    pid=$(head -n 1 "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    wait_until "$seconds" eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- PostgreSQL

pg_user=postgres
((EUID == 0)) || pg_user=$(id -un)

# psql against 127.0.0.1:$1, one value per line, no psqlrc.
pg_sql() {
    local port=$1
    shift
    "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

pg_running() { as_user "$pg_user" "$PG_BIN/pg_ctl" status -D "$1/data" >/dev/null 2>&1; }

# Stops the server whose node directory is $1 (fast, then immediate).
pg_stop() {
    local dir=$1
    [[ -d $dir/data ]] || return 0
    pg_running "$dir" || return 0
    as_user "$pg_user" "$PG_BIN/pg_ctl" stop -D "$dir/data" -m fast -w -t 20 >/dev/null 2>&1 ||
        as_user "$pg_user" "$PG_BIN/pg_ctl" stop -D "$dir/data" -m immediate -w -t 20 >/dev/null 2>&1 || true
}

# Starts the server in node directory $1 and waits until it accepts connections.
pg_start() {
    local dir=$1 port=$2
    if port_busy "$port"; then
        fail "" "port $port is already taken by a process that is not this cluster's"
    fi
    as_user "$pg_user" "$PG_BIN/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 60 >/dev/null ||
        fail "$dir/postgres.log" "PostgreSQL in $dir did not start on port $port"
}

# The settings every node shares, appended to postgresql.conf (later
# lines win). fsync=off and full_page_writes=off: a test cluster, a crash
# may lose or corrupt it and `up` then rebuilds it.
pg_settings() {
    local dir=$1 port=$2
    cat <<EOF

# --- scripts/cluster.sh (test cluster, no durability) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
max_connections = 200
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 10
wal_keep_size = 64MB
hot_standby = on
fsync = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
}

# A fresh primary in node directory $1 on port $2.
pg_create_primary() {
    local dir=$1 port=$2
    rm -rf "$dir"
    own_dir "$pg_user" "$dir"
    own_dir "$pg_user" "$dir/run"
    as_user "$pg_user" "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
        fail "$dir/initdb.log" "initdb in $dir failed"
    pg_settings "$dir" "$port" | as_user "$pg_user" tee -a "$dir/data/postgresql.conf" >/dev/null
    # Trust on loopback, replication included (pg_basebackup and the
    # replicas' walreceivers connect as postgres over TCP).
    as_user "$pg_user" tee "$dir/data/pg_hba.conf" >/dev/null <<EOF
local all         all                trust
local replication all                trust
host  all         all  127.0.0.1/32  trust
host  replication all  127.0.0.1/32  trust
EOF
    pg_start "$dir" "$port"
}

# A fresh hot standby in node directory $1 on port $2, streaming from the
# primary on port $3; $4 is its recovery_min_apply_delay (empty: none).
pg_create_replica() {
    local dir=$1 port=$2 primary_port=$3 delay=${4:-}
    rm -rf "$dir"
    own_dir "$pg_user" "$dir"
    own_dir "$pg_user" "$dir/run"
    # -R writes primary_conninfo and standby.signal; the primary's
    # postgresql.conf comes along, and the lines below override its port.
    as_user "$pg_user" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
        -D "$dir/data" -R -X stream --checkpoint=fast --no-sync >"$dir/basebackup.log" 2>&1 ||
        fail "$dir/basebackup.log" "pg_basebackup from port $primary_port into $dir failed"
    {
        pg_settings "$dir" "$port"
        if [[ -n $delay ]]; then echo "recovery_min_apply_delay = '$delay'"; fi
    } | as_user "$pg_user" tee -a "$dir/data/postgresql.conf" >/dev/null
    pg_start "$dir" "$port"
    wait_until 30 pg_streaming "$port" ||
        fail "$dir/postgres.log" "the replica on port $port does not stream from port $primary_port"
}

# Whether the standby on port $1 receives WAL by streaming.
pg_streaming() { [[ $(pg_sql "$1" -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null) == streaming ]]; }

pg_system_id() { pg_sql "$1" -c "SELECT system_identifier FROM pg_control_system()" 2>/dev/null; }

# Whether the primary in $1 on port $2 is ours, up, and not in recovery.
pg_primary_healthy() {
    local dir=$1 port=$2
    [[ -d $dir/data ]] && pg_running "$dir" &&
        [[ $(pg_sql "$port" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]
}

# Whether the replica in $1 on port $2 is ours, up, a standby of the
# primary on port $3 (same system identifier), streaming, with delay $4.
pg_replica_healthy() {
    local dir=$1 port=$2 primary_port=$3 delay=${4:-0}
    [[ -d $dir/data ]] && pg_running "$dir" &&
        [[ $(pg_sql "$port" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == t ]] &&
        [[ $(pg_system_id "$port") == "$(pg_system_id "$primary_port")" ]] &&
        [[ $(pg_sql "$port" -c "SHOW recovery_min_apply_delay" 2>/dev/null) == "$delay" ]] &&
        pg_streaming "$port"
}

# Brings up a primary in $1/primary on port $2 and a replica in $1/$4 on
# port $3 (delay $5), keeping whatever is already healthy. Used by `up` and
# by `pg-pair`.
pg_up_primary() {
    local dir=$1 port=$2
    if pg_primary_healthy "$dir" "$port"; then
        log "PostgreSQL primary on $port: up"
        return 1 # kept: replicas of it may be kept too
    fi
    pg_stop "$dir"
    log "PostgreSQL primary on $port: creating"
    pg_create_primary "$dir" "$port"
}

pg_up_replica() {
    local dir=$1 port=$2 primary_port=$3 delay=${4:-} fresh_primary=$5
    if [[ $fresh_primary == no ]] && pg_replica_healthy "$dir" "$port" "$primary_port" "${delay:-0}"; then
        log "PostgreSQL replica on $port: up"
        return 0
    fi
    pg_stop "$dir"
    log "PostgreSQL replica on $port${delay:+ (delay $delay)}: creating"
    pg_create_replica "$dir" "$port" "$primary_port" "$delay"
}

# The shared cluster: primary, streaming replica, delayed replica.
pg_cluster_up() {
    local fresh=yes
    pg_up_primary "$ROOT/pg-primary" "$PG_PRIMARY_PORT" || fresh=no
    # The role PgBouncer pools in session mode; a superuser like postgres,
    # so it reaches every test database. Replicated to the standbys.
    pg_sql "$PG_PRIMARY_PORT" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PGBOUNCER_SESSION_USER') THEN
            CREATE ROLE $PGBOUNCER_SESSION_USER LOGIN SUPERUSER;
        END IF; END \$\$" ||
        fail "$ROOT/pg-primary/postgres.log" "could not create the role $PGBOUNCER_SESSION_USER"
    pg_up_replica "$ROOT/pg-replica" "$PG_REPLICA_PORT" "$PG_PRIMARY_PORT" "" "$fresh"
    pg_up_replica "$ROOT/pg-delayed" "$PG_DELAYED_PORT" "$PG_PRIMARY_PORT" "$PG_DELAY" "$fresh"
}

pg_cluster_down() {
    pg_stop "$ROOT/pg-delayed"
    pg_stop "$ROOT/pg-replica"
    pg_stop "$ROOT/pg-primary"
}

# ---------------------------------------------------------------- Galera

my_user=mysql
((EUID == 0)) || my_user=$(id -un)

galera_dir() { echo "$ROOT/galera-$1"; }

# SQL on node $1 (1-3) over TCP as root, tab-separated, no headers.
galera_sql() {
    local port=${GALERA_CLIENT_PORTS[$(($1 - 1))]}
    shift
    mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u root -N -B \
        --connect-timeout=2 "$@"
}

# The value of status variable $2 on node $1.
galera_status() {
    galera_sql "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | cut -f 2
}

# Whether node $1 is a synced member of a 3-node primary component.
galera_node_healthy() {
    pid_alive "$(galera_dir "$1")/run/mariadbd.pid" &&
        [[ $(galera_status "$1" wsrep_ready) == ON ]] &&
        [[ $(galera_status "$1" wsrep_local_state_comment) == Synced ]] &&
        [[ $(galera_status "$1" wsrep_cluster_size) == 3 ]] &&
        [[ $(galera_status "$1" wsrep_cluster_status) == Primary ]]
}

galera_healthy() { galera_node_healthy 1 && galera_node_healthy 2 && galera_node_healthy 3; }

# Node $1's configuration. Galera needs row-based binlogs and interleaved
# auto-increment locks; with wsrep_gtid_mode every node writes the
# cluster's transactions with one GTID domain and one server_id, so
# @@gtid_binlog_pos names the same position on every node.
galera_config() {
    local n=$1 dir i=$(($1 - 1)) members=""
    dir=$(galera_dir "$n")
    for port in "${GALERA_GCOMM_PORTS[@]}"; do members+="${members:+,}127.0.0.1:$port"; done
    cat <<EOF
# scripts/cluster.sh: Galera node $n (test cluster, no durability)
[mysqld]
user = $my_user
datadir = $dir/data
socket = $dir/run/mariadbd.sock
pid-file = $dir/run/mariadbd.pid
log-error = $dir/mariadbd.log
bind-address = 127.0.0.1
port = ${GALERA_CLIENT_PORTS[$i]}
skip-name-resolve
max_connections = 300
performance_schema = OFF
innodb_buffer_pool_size = 64M
innodb_log_file_size = 16M
innodb_flush_log_at_trx_commit = 0
sync_binlog = 0
default_storage_engine = InnoDB
binlog_format = ROW
innodb_autoinc_lock_mode = 2
log_bin = binlog
log_slave_updates = ON
server_id = 1
gtid_domain_id = $((10 + n))
wsrep_gtid_mode = ON
wsrep_gtid_domain_id = 1
wsrep_on = ON
wsrep_provider = $GALERA_PROVIDER
wsrep_cluster_name = roster-test
wsrep_cluster_address = gcomm://$members
wsrep_node_name = node$n
wsrep_node_address = 127.0.0.1:${GALERA_GCOMM_PORTS[$i]}
wsrep_node_incoming_address = 127.0.0.1:${GALERA_CLIENT_PORTS[$i]}
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:${GALERA_SST_PORTS[$i]}
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:${GALERA_GCOMM_PORTS[$i]};ist.recv_addr=127.0.0.1:${GALERA_IST_PORTS[$i]};gcache.size=32M"
wsrep_slave_threads = 2
EOF
}

# Starts node $1 in the background; $2 is --wsrep-new-cluster for the first.
galera_start() {
    local n=$1 bootstrap=${2:-} dir
    dir=$(galera_dir "$n")
    for port in "${GALERA_CLIENT_PORTS[$((n - 1))]}" "${GALERA_GCOMM_PORTS[$((n - 1))]}"; do
        if port_busy "$port"; then
            fail "" "port $port (Galera node $n) is already taken by a process that is not this cluster's"
        fi
    done
    # --defaults-file first: the machine's /etc/mysql configuration is not read.
    # shellcheck disable=SC2086 # $bootstrap is one optional word
    setsid mariadbd --defaults-file="$dir/my.cnf" $bootstrap >>"$dir/mariadbd.log" 2>&1 </dev/null &
}

# Waits until node $1 is synced (and, for the first node, until the
# cluster has $2 members).
galera_wait_synced() {
    local n=$1 size=$2
    wait_until 60 eval "[[ \$(galera_status $n wsrep_local_state_comment) == Synced && \$(galera_status $n wsrep_cluster_size) -ge $size ]]" ||
        fail "$(galera_dir "$n")/mariadbd.log" "Galera node $n did not reach Synced"
}

galera_create() {
    local dir
    for n in 1 2 3; do
        dir=$(galera_dir "$n")
        rm -rf "$dir"
        mkdir -p "$dir"
        own_dir "$my_user" "$dir/data"
        own_dir "$my_user" "$dir/run"
        touch "$dir/mariadbd.log"
        if ((EUID == 0)); then chown "$my_user:" "$dir/mariadbd.log"; fi
        galera_config "$n" >"$dir/my.cnf"
    done
    # Only node 1 gets system tables; the others receive node 1's data by
    # state snapshot transfer (rsync) when they join. `normal` gives
    # root@localhost an empty password instead of unix_socket auth.
    dir=$(galera_dir 1)
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$my_user" \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$dir/install-db.log" 2>&1 ||
        fail "$dir/install-db.log" "mariadb-install-db for Galera node 1 failed"
    log "Galera node 1: bootstrapping a new cluster"
    galera_start 1 --wsrep-new-cluster
    galera_wait_synced 1 1
    # skip-name-resolve: a TCP client from 127.0.0.1 is 'root'@'127.0.0.1',
    # not 'root'@'localhost'. Replicated to the joiners by the SST.
    mariadb --no-defaults -S "$dir/run/mariadbd.sock" -u root -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" ||
        fail "$dir/mariadbd.log" "could not create root@127.0.0.1 on Galera node 1"
    # One joiner at a time: a donor serves one rsync SST at a time.
    for n in 2 3; do
        log "Galera node $n: joining"
        galera_start "$n"
        galera_wait_synced "$n" "$n"
    done
}

galera_down() {
    for n in 3 2 1; do stop_pidfile "$(galera_dir "$n")/run/mariadbd.pid" 30; done
}

galera_up() {
    if galera_healthy; then
        log "Galera: 3 nodes synced"
        return 0
    fi
    # A partial or stale cluster is rebuilt from scratch: a fresh bootstrap
    # takes seconds, recovering an unknown state takes judgement.
    galera_down
    galera_create
    wait_until 30 galera_healthy || fail "$(galera_dir 1)/mariadbd.log" "the Galera cluster is not healthy after joining"
    log "Galera: 3 nodes synced"
}

# ---------------------------------------------------------------- PgBouncer

pgb_dir() { echo "$ROOT/pgbouncer"; }

# PgBouncer's configuration (see pgb_create).
pgb_ini() {
    local dir
    dir=$(pgb_dir)
    cat <<EOF
; scripts/cluster.sh: PgBouncer for the cluster tests
[databases]
* = host=127.0.0.1 port=$PG_PRIMARY_PORT

[users]
$PGBOUNCER_SESSION_USER = pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir = $dir/run
pidfile = $dir/run/pgbouncer.pid
logfile = $dir/pgbouncer.log
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
ignore_startup_parameters = extra_float_digits
; Per database and user: tests open pools of 10-20; the primary allows 200.
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
max_user_connections = 100
; Server connections to a test's dropped database go quickly.
server_idle_timeout = 10
EOF
}

# Up, answering, and running the configuration pgb_ini prints now.
pgb_healthy() {
    local dir
    dir=$(pgb_dir)
    pid_alive "$dir/run/pgbouncer.pid" &&
        [[ -f $dir/pgbouncer.ini && $(cat "$dir/pgbouncer.ini") == "$(pgb_ini)" ]] &&
        [[ $(pg_sql "$PGBOUNCER_PORT" -c "SELECT 1" 2>/dev/null) == 1 ]]
}

pgb_install() {
    command -v pgbouncer >/dev/null && return 0
    [[ -x /usr/sbin/pgbouncer ]] && return 0
    log "PgBouncer: installing Debian's package"
    ((EUID == 0)) || fail "" "pgbouncer is not installed (apt-get install pgbouncer needs root)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq pgbouncer >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq pgbouncer >/dev/null
    } || fail "" "apt-get install pgbouncer failed"
    # The package's own service is not ours: leave it stopped.
    if command -v systemctl >/dev/null; then systemctl disable --now pgbouncer >/dev/null 2>&1 || true; fi
    service pgbouncer stop >/dev/null 2>&1 || true
}

# Transaction pooling (pool_mode = transaction): a server connection belongs
# to a client for one transaction only (an autocommit statement is one), as
# where PgBouncer multiplexes many application pools onto few server
# connections. The user $PGBOUNCER_SESSION_USER is pooled in session mode
# instead (the server connection stays with the client connection), to
# compare the two.
#
# ignore_startup_parameters = extra_float_digits: sqlx sends it in every
# startup packet and PgBouncer 1.18 refuses a parameter it does not track
# ("unsupported startup parameter: extra_float_digits"); PostgreSQL 12+
# prints floats exactly whatever it says, so dropping it changes nothing.
# `options` is deliberately NOT ignored: a pool with a statement_timeout
# sends it there, and ignoring it would drop the time limit silently;
# refused, the pool fails to connect and says why.
pgb_create() {
    local dir
    dir=$(pgb_dir)
    rm -rf "$dir"
    own_dir "$pg_user" "$dir"
    own_dir "$pg_user" "$dir/run"
    printf '"postgres" ""\n"%s" ""\n' "$PGBOUNCER_SESSION_USER" >"$dir/userlist.txt"
    pgb_ini >"$dir/pgbouncer.ini"
    chown -R "$pg_user:" "$dir" 2>/dev/null || true
    if port_busy "$PGBOUNCER_PORT"; then
        fail "" "port $PGBOUNCER_PORT is already taken by a process that is not this cluster's (the Debian pgbouncer service?)"
    fi
    as_user "$pg_user" pgbouncer -d -q "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1 ||
        fail "$dir/pgbouncer.log" "PgBouncer did not start"
    wait_until 10 pgb_healthy || fail "$dir/pgbouncer.log" "PgBouncer on $PGBOUNCER_PORT does not reach the primary"
}

pgb_up() {
    if pgb_healthy; then
        log "PgBouncer on $PGBOUNCER_PORT: up"
        return 0
    fi
    stop_pidfile "$(pgb_dir)/run/pgbouncer.pid" 10
    pgb_install
    log "PgBouncer on $PGBOUNCER_PORT: creating"
    pgb_create
}

pgb_down() { stop_pidfile "$(pgb_dir)/run/pgbouncer.pid" 10; }

# ---------------------------------------------------------------- commands

cmd_up() {
    [[ -x $PG_BIN/initdb ]] || fail "" "no PostgreSQL server binaries (looked for initdb in '$PG_BIN')"
    [[ -f $GALERA_PROVIDER ]] || fail "" "no Galera provider at $GALERA_PROVIDER"
    command -v mariadbd >/dev/null || fail "" "mariadbd is not installed"
    command -v rsync >/dev/null || fail "" "rsync (Galera's state transfer) is not installed"
    local started=$SECONDS
    mkdir -p "$ROOT"
    chmod 755 "$ROOT"
    pg_cluster_up
    pgb_up
    galera_up
    log "up in $((SECONDS - started)) s; see: $0 env"
}

cmd_down() {
    pgb_down
    galera_down
    pg_cluster_down
    rm -rf "$ROOT"
    log "down; $ROOT removed"
}

cmd_status() {
    local ok=0 n
    check() {
        local name=$1
        shift
        if "$@"; then echo "up    $name"; else
            echo "DOWN  $name"
            ok=1
        fi
    }
    check "postgres primary 127.0.0.1:$PG_PRIMARY_PORT" pg_primary_healthy "$ROOT/pg-primary" "$PG_PRIMARY_PORT"
    check "postgres replica 127.0.0.1:$PG_REPLICA_PORT" pg_replica_healthy "$ROOT/pg-replica" "$PG_REPLICA_PORT" "$PG_PRIMARY_PORT" 0
    check "postgres delayed replica 127.0.0.1:$PG_DELAYED_PORT ($PG_DELAY)" pg_replica_healthy "$ROOT/pg-delayed" "$PG_DELAYED_PORT" "$PG_PRIMARY_PORT" "$PG_DELAY"
    for n in 1 2 3; do
        check "galera node $n 127.0.0.1:${GALERA_CLIENT_PORTS[$((n - 1))]}" galera_node_healthy "$n"
    done
    check "pgbouncer 127.0.0.1:$PGBOUNCER_PORT" pgb_healthy
    return "$ok"
}

cmd_env() {
    local pg="" galera=""
    for port in "$PG_PRIMARY_PORT" "$PG_REPLICA_PORT" "$PG_DELAYED_PORT"; do
        pg+="${pg:+,}postgres://postgres@127.0.0.1:$port/postgres"
    done
    for port in "${GALERA_CLIENT_PORTS[@]}"; do
        galera+="${galera:+,}mysql://root@127.0.0.1:$port/mysql"
    done
    echo "export ROSTER_TEST_PG_REPLICA='$pg'"
    echo "export ROSTER_TEST_GALERA='$galera'"
    echo "export ROSTER_TEST_PGBOUNCER='postgres://postgres@127.0.0.1:$PGBOUNCER_PORT/postgres'"
}

# A throwaway primary (DIR/primary) + streaming replica (DIR/replica).
cmd_pg_pair() {
    local dir=$1 primary_port=$2 replica_port=$3 fresh=yes
    mkdir -p "$dir"
    chmod 755 "$dir"
    dir=$(cd "$dir" && pwd)
    pg_up_primary "$dir/primary" "$primary_port" || fresh=no
    pg_up_replica "$dir/replica" "$replica_port" "$primary_port" "" "$fresh"
}

cmd_pg_pair_down() {
    local dir=$1
    [[ -d $dir ]] || return 0
    pg_stop "$dir/replica"
    pg_stop "$dir/primary"
    rm -rf "$dir"
}

usage() {
    sed -n '/^# Usage:/,/^# Everything/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
pg-pair)
    [[ $# -eq 4 ]] || usage
    cmd_pg_pair "$2" "$3" "$4"
    ;;
pg-pair-down)
    [[ $# -eq 2 ]] || usage
    cmd_pg_pair_down "$2"
    ;;
*) usage ;;
esac
