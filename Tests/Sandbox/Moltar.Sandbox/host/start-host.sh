#!/bin/bash
# Starts ONE sandbox host: a real OpenSSH sshd on its own loopback address.
#
#   start-host.sh --state-dir DIR --name NAME --address ADDR [--port 22] [--user ubuntu]
#                 [--client-key-pub FILE] [--apt-repo DIR] [--shared-root] [--fresh] [--watch-stdin]
#   start-host.sh --state-dir DIR --prepare-base [--user ubuntu] [--client-key-pub FILE] [--apt-repo DIR]
#
# Own root (default; needs root): the host runs in its own mount, UTS and PID namespaces
# (unshare --kill-child), on an overlay of / whose upper layer is DIR/hosts/NAME/upper, with
# fresh /proc, /sys (read-only), /dev/pts, /dev/shm, /run and /tmp. It then execs sshd as PID 1
# of the namespace. This script's PID becomes the unshare process: SIGKILL on it ends the host
# and every mount it made (unshare blocks SIGTERM; send SIGTERM to its child, the namespace's
# PID 1 = sshd, for a clean stop).
#
# What every host shares is provisioned once per state folder, not per host: --prepare-base
# (run by the fleet before its hosts start, or by the first host that finds it missing or stale)
# makes DIR/base, the upper layer of a one-off overlay of / in which the login user, its
# authorized_keys, passwordless sudo, the APT source, the device nodes of /dev and the removal
# of the machine's own host keys were done. A new host's disk starts as a copy of it (one cp,
# whiteouts included), so a host costs a handful of processes and no useradd. What differs per
# host (host key, sshd_config, /etc/hostname, /etc/hosts) is written into its upper layer before
# the overlay is mounted, and all its mounts are one `mount -a` over its own fstab.
#
# Shared root (--shared-root): this script's PID becomes `sshd -D` on the machine's own
# filesystem; the login user is the current user.
#
# Files, all under DIR/hosts/NAME: ssh_host_ed25519_key(.pub) (made once, reused on restart;
# the fleet writes it before the start, this script only when it is missing), sshd_config,
# fstab, sshd.log (this script's and sshd's output), upper/ work/ root/ (own root).
# --fresh empties the host's disk (upper layer) and its log first; otherwise a restart keeps
# them, like a stopped and started instance.
# --watch-stdin: the host stops itself when stdin reaches EOF (its owner went away).
set -euo pipefail
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
SELF=${BASH_SOURCE[0]}
[[ "$SELF" == /* ]] || SELF=$(realpath -- "$SELF")

die() { echo "start-host: $*" >&2; exit 2; }

# --------------------------------------------------------------------------------------------
# Inside the one-off namespace of --prepare-base: provision the shared layer.
if [[ "${1:-}" == "--inside-base" ]]; then
    B=$2
    R=$B/root
    HUSER=$MOLTAR_HOST_USER
    APT=${MOLTAR_HOST_APT:-}
    mount -t overlay overlay -o "lowerdir=/,upperdir=$B/upper,workdir=$B/work" "$R"
    # Scratch that must not end up in the layer.
    mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
    mount -t tmpfs -o mode=0755 tmpfs "$R/run"
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
    install -m 0644 "$MOLTAR_HOST_CLIENT_PUB" "$R/run/moltar-client.pub"

    # /dev of every host: the nodes a login needs (its own devpts and shm are mounted over pts/ and shm/).
    mkdir -p "$R/dev/pts" "$R/dev/shm"
    chmod 1777 "$R/dev/shm"
    rm -f "$R/dev/null" "$R/dev/zero" "$R/dev/full" "$R/dev/random" "$R/dev/urandom" "$R/dev/tty" \
        "$R/dev/ptmx" "$R/dev/fd" "$R/dev/stdin" "$R/dev/stdout" "$R/dev/stderr"
    mknod -m 666 "$R/dev/null" c 1 3
    mknod -m 666 "$R/dev/zero" c 1 5
    mknod -m 666 "$R/dev/full" c 1 7
    mknod -m 666 "$R/dev/random" c 1 8
    mknod -m 666 "$R/dev/urandom" c 1 9
    mknod -m 666 "$R/dev/tty" c 5 0
    ln -s pts/ptmx "$R/dev/ptmx"
    ln -s /proc/self/fd "$R/dev/fd"
    ln -s /proc/self/fd/0 "$R/dev/stdin"
    ln -s /proc/self/fd/1 "$R/dev/stdout"
    ln -s /proc/self/fd/2 "$R/dev/stderr"
    # The machine's own host keys never show through (each host gets its own).
    rm -f "$R"/etc/ssh/ssh_host_*
    mkdir -p "$R/etc/ssh"
    # Placeholders each host overwrites with its own key before its overlay is mounted (a whiteout
    # there could not be written through).
    (umask 077; : > "$R/etc/ssh/ssh_host_ed25519_key")
    : > "$R/etc/ssh/ssh_host_ed25519_key.pub"

    chroot "$R" /bin/bash -euo pipefail -c '
        HUSER=$1 APT=$2
        if ! getent passwd "$HUSER" > /dev/null; then
            # "*" rather than the locked "!": with UsePAM no, sshd refuses locked accounts.
            useradd --create-home --shell /bin/bash --password "*" "$HUSER"
        fi
        IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$HUSER")
        install -d -m 0700 -o "$uid" -g "$gid" "$home/.ssh"
        install -m 0600 -o "$uid" -g "$gid" /run/moltar-client.pub "$home/.ssh/authorized_keys"
        printf "%s ALL=(ALL:ALL) NOPASSWD:ALL\n" "$HUSER" > /etc/sudoers.d/90-moltar-sandbox
        chmod 0440 /etc/sudoers.d/90-moltar-sandbox
        if [[ -n "$APT" ]]; then
            # Only the local repository: the machine'"'"'s own sources are unreachable from a host.
            rm -f /etc/apt/sources.list
            find /etc/apt/sources.list.d -mindepth 1 -maxdepth 1 ! -name moltar-sandbox.list -delete
            echo "deb [trusted=yes] file:/srv/apt ./" > /etc/apt/sources.list.d/moltar-sandbox.list
        fi
    ' provision "$HUSER" "$APT"
    exit 0
fi

# --------------------------------------------------------------------------------------------
# Inside a host's namespaces (PID 1 of the host).
if [[ "${1:-}" == "--inside" ]]; then
    HOSTDIR=$2
    NAME=$MOLTAR_HOST_NAME
    WATCH=${MOLTAR_HOST_WATCH:-0}

    mount -a -T "$HOSTDIR/fstab"
    cd "$HOSTDIR/root"
    pivot_root . .
    umount -l .
    cd /
    echo "$NAME" > /proc/sys/kernel/hostname

    if [[ "$WATCH" == 1 ]]; then
        # Stop the host when its owner goes away (stdin is a pipe from it). A background job's
        # stdin is /dev/null, hence fd 3. PID 1 is sshd once the exec below is done; until then
        # it is this shell, which as a namespace's init ignores SIGTERM, hence the repetition.
        exec 3<&0
        (
            trap '' TERM
            read -r _ <&3 || true
            exec 3<&-
            echo "start-host: owner gone (stdin closed), stopping the host"
            while :; do kill -TERM 1; sleep 0.2; done
        ) &
        exec 3<&-
    fi
    echo "start-host: $NAME own root ready, exec sshd"
    exec -c /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
fi

# --------------------------------------------------------------------------------------------
# On the machine.
STATE= NAME= ADDR= PORT=22 HUSER= CLIENT_PUB= APT= SHARED=0 FRESH=0 WATCH=0 BASE_ONLY=0
while (($#)); do
    case "$1" in
        --state-dir) STATE=${2:?}; shift 2 ;;
        --name) NAME=${2:?}; shift 2 ;;
        --address) ADDR=${2:?}; shift 2 ;;
        --port) PORT=${2:?}; shift 2 ;;
        --user) HUSER=${2:?}; shift 2 ;;
        --client-key-pub) CLIENT_PUB=${2:?}; shift 2 ;;
        --apt-repo) APT=${2:?}; shift 2 ;;
        --shared-root) SHARED=1; shift ;;
        --fresh) FRESH=1; shift ;;
        --watch-stdin) WATCH=1; shift ;;
        --prepare-base) BASE_ONLY=1; shift ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ -n "$STATE" ]] || die "--state-dir is required"
[[ "$STATE" == /* ]] || STATE=$(realpath -m -- "$STATE")
[[ "$STATE" != *[,:[:space:]]* ]] || die "state dir must not contain commas, colons or spaces: $STATE"
CLIENT_PUB=${CLIENT_PUB:-$STATE/client_ed25519.pub}
[[ -r "$CLIENT_PUB" ]] || die "client public key not readable: $CLIENT_PUB"
if [[ -n "$APT" ]]; then
    APT=$(realpath -e -- "$APT") || die "APT repository not found"
fi
if ((EUID != 0)); then SHARED=1; fi
HUSER=${HUSER:-ubuntu}
BASE=$STATE/base

# The shared layer is current when it was made for this user, client key and APT choice, after the
# machine's accounts and sudo policy last changed (a reused state folder on a changed machine).
base_is_current() {
    local stamp=$1
    [[ -d "$BASE" && -f "$BASE.stamp" && "$(< "$BASE.stamp")" == "$stamp" ]] || return 1
    local f
    for f in /etc/passwd /etc/group /etc/shadow /etc/sudoers; do
        [[ ! "$f" -nt "$BASE.stamp" ]] || return 1
    done
}

prepare_base() {
    [[ "$HUSER" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "bad user name: $HUSER"
    local stamp
    stamp="user=$HUSER apt=${APT:+yes} client=$(< "$CLIENT_PUB")"
    base_is_current "$stamp" && return 0
    mkdir -p "$STATE"
    exec 8> "$STATE/base.lock"
    flock 8
    if ! base_is_current "$stamp"; then
        local t0=$EPOCHREALTIME
        local tmp=$STATE/base.new.$$
        rm -rf "$tmp"
        mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
        MOLTAR_HOST_USER=$HUSER MOLTAR_HOST_APT=$APT MOLTAR_HOST_CLIENT_PUB=$CLIENT_PUB \
            unshare --mount --propagation private /bin/bash "$SELF" --inside-base "$tmp" \
            || die "provisioning the shared layer $BASE failed"
        rm -rf "$BASE" "$BASE.stamp"
        mv "$tmp/upper" "$BASE"
        rm -rf "$tmp"
        printf '%s\n' "$stamp" > "$BASE.stamp"
        echo "start-host: shared layer $BASE ready for user $HUSER in $(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 )) ms"
    fi
    exec 8>&-
}

if ((BASE_ONLY)); then
    ((SHARED == 0)) || die "--prepare-base needs root (own-root hosts)"
    prepare_base
    exit 0
fi

[[ -n "$NAME" && -n "$ADDR" ]] || die "--name and --address are required"
[[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] || die "bad host name: $NAME"
[[ "$ADDR" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "address must be a loopback IPv4 address: $ADDR"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT"

HOSTDIR=$STATE/hosts/$NAME
[[ -d "$HOSTDIR" ]] || mkdir -p "$HOSTDIR"
LOG=$HOSTDIR/sshd.log
if ((FRESH)); then : > "$LOG"; fi
exec >> "$LOG" 2>&1
echo "start-host: === $(TZ=UTC0 printf '%(%FT%TZ)T' -1) $NAME $ADDR:$PORT pid $$ $( ((SHARED)) && echo shared-root || echo own-root)"

KEY=$HOSTDIR/ssh_host_ed25519_key
if [[ ! -s "$KEY" || ! -s "$KEY.pub" ]]; then
    rm -f "$KEY" "$KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "$NAME" -f "$KEY"
fi

common_config() {
    printf '%s\n' \
        "ListenAddress $ADDR:$PORT" \
        "PidFile none" \
        "PubkeyAuthentication yes" \
        "PasswordAuthentication no" \
        "KbdInteractiveAuthentication no" \
        "UsePAM no" \
        "UseDNS no" \
        "PrintMotd no" \
        "X11Forwarding no" \
        "AllowTcpForwarding yes" \
        "MaxStartups 200" \
        "MaxSessions 100" \
        "LoginGraceTime 30" \
        "AcceptEnv LANG LC_*" \
        "Subsystem sftp internal-sftp" \
        "LogLevel INFO"
}

if ((SHARED)); then
    chmod 0600 "$KEY"
    HUSER=$(id -un)
    install -m 0600 "$CLIENT_PUB" "$HOSTDIR/authorized_keys"
    {
        common_config
        echo "HostKey $KEY"
        echo "AuthorizedKeysFile $HOSTDIR/authorized_keys"
        echo "StrictModes no"
        echo "PermitRootLogin prohibit-password"
    } > "$HOSTDIR/sshd_config"
    if ((EUID == 0)) && [[ ! -d /run/sshd ]]; then
        # sshd running as root insists on its privilege separation directory.
        mkdir -p -m 0755 /run/sshd
    fi
    if ((WATCH)); then
        # Stop sshd (this PID after the exec) when the owner goes away, unless it is gone already
        # (then this process has another parent). A background job's stdin is /dev/null, hence fd 3.
        exec 3<&0
        (
            trap '' TERM
            read -r _ <&3 || true
            exec 3<&-
            read -r _ _ _ ppid _ < "/proc/$BASHPID/stat"
            if [[ "$ppid" == "$$" ]]; then
                echo "start-host: owner gone (stdin closed), stopping the host"
                kill -TERM "$$"
            fi
        ) &
        exec 3<&-
    fi
    echo "start-host: $NAME ($ADDR) shared root, user $HUSER, exec sshd"
    exec -c /usr/sbin/sshd -D -e -f "$HOSTDIR/sshd_config"
fi

prepare_base

UPPER=$HOSTDIR/upper
WORK=$HOSTDIR/work
ROOT=$HOSTDIR/root
if ((FRESH)) && [[ -e "$UPPER" ]]; then
    rm -rf "$UPPER" "$WORK"
fi
# A new disk is a copy of the shared layer; a restart keeps the disk it had.
[[ -d "$UPPER" ]] || cp -a "$BASE" "$UPPER"
[[ -d "$WORK" && -d "$ROOT" ]] || mkdir -p "$WORK" "$ROOT"

# What differs per host goes straight into its disk (the overlay is not mounted yet); shell
# built-ins only, no process per file.
{
    common_config
    echo "HostKey /etc/ssh/ssh_host_ed25519_key"
    echo "AuthorizedKeysFile .ssh/authorized_keys"
    echo "PermitRootLogin prohibit-password"
} > "$HOSTDIR/sshd_config"
[[ -d "$UPPER/etc/ssh" ]] || mkdir -p "$UPPER/etc/ssh"
printf '%s\n' "$(< "$HOSTDIR/sshd_config")" > "$UPPER/etc/ssh/sshd_config"
(umask 077; printf '%s\n' "$(< "$KEY")" > "$UPPER/etc/ssh/ssh_host_ed25519_key")
printf '%s\n' "$(< "$KEY.pub")" > "$UPPER/etc/ssh/ssh_host_ed25519_key.pub"
printf '%s\n' "$NAME" > "$UPPER/etc/hostname"
printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$ADDR" "$NAME" > "$UPPER/etc/hosts"

# Every mount of the host, in order, for one `mount -a` inside its namespace. The overlay shows
# only the / filesystem, so each submount is made fresh; the sandbox's state (keys, the other
# hosts' disks) is hidden where it would show through the lower layer.
{
    printf 'overlay %s overlay lowerdir=/,upperdir=%s,workdir=%s 0 0\n' "$ROOT" "$UPPER" "$WORK"
    printf 'proc %s/proc proc nosuid,nodev,noexec 0 0\n' "$ROOT"
    printf 'sysfs %s/sys sysfs ro,nosuid,nodev,noexec 0 0\n' "$ROOT"
    printf 'devpts %s/dev/pts devpts newinstance,ptmxmode=0666,mode=0620,gid=5 0 0\n' "$ROOT"
    printf 'tmpfs %s/dev/shm tmpfs mode=1777,nosuid,nodev 0 0\n' "$ROOT"
    printf 'tmpfs %s/run tmpfs mode=0755,nosuid,nodev 0 0\n' "$ROOT"
    printf 'tmpfs %s/run/sshd tmpfs mode=0755,nosuid,nodev,noexec,size=4k,X-mount.mkdir 0 0\n' "$ROOT"
    printf 'tmpfs %s/run/lock tmpfs mode=1777,nosuid,nodev,noexec,X-mount.mkdir 0 0\n' "$ROOT"
    printf 'tmpfs %s/tmp tmpfs mode=1777,nosuid,nodev 0 0\n' "$ROOT"
    case "$STATE/" in
        /tmp/*|/run/*|/dev/*|/proc/*|/sys/*) ;;   # already under a fresh mount
        *) printf 'tmpfs %s%s tmpfs ro,nosuid,nodev,noexec,size=4k,mode=0755,X-mount.mkdir 0 0\n' "$ROOT" "$STATE" ;;
    esac
    if [[ -n "$APT" ]]; then
        printf '%s %s/srv/apt none bind,ro,nosuid,nodev,X-mount.mkdir 0 0\n' "$APT" "$ROOT"
    fi
} > "$HOSTDIR/fstab"

export MOLTAR_HOST_NAME=$NAME MOLTAR_HOST_WATCH=$WATCH
exec unshare --mount --propagation private --uts --pid --fork --kill-child \
    /bin/bash "$SELF" --inside "$HOSTDIR"
