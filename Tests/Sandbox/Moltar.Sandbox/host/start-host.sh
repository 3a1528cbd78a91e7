#!/bin/bash
# Starts ONE sandbox host: a real OpenSSH sshd on its own loopback address.
#
#   start-host.sh --state-dir DIR --name NAME --address ADDR [--port 22] [--user ubuntu]
#                 [--client-key-pub FILE] [--apt-repo DIR] [--shared-root] [--fresh] [--watch-stdin]
#
# Own root (default; needs root): the host runs in its own mount, UTS and PID namespaces
# (unshare --kill-child), on an overlay of / whose upper layer is DIR/hosts/NAME/upper, with
# fresh /proc, /sys (read-only), /dev, /dev/shm, /run and /tmp. It provisions itself (user,
# authorized_keys, passwordless sudo, /etc/hosts, its own host key, optional APT source)
# and then execs sshd as PID 1 of the namespace. This script's PID becomes the unshare
# process: SIGKILL on it ends the host and every mount it made (unshare blocks SIGTERM; send
# SIGTERM to its child, the namespace's PID 1 = sshd, for a clean stop).
#
# Shared root (--shared-root): this script's PID becomes `sshd -D` on the machine's own
# filesystem; the login user is the current user.
#
# Files, all under DIR/hosts/NAME: ssh_host_ed25519_key(.pub) (made once, reused on restart),
# sshd_config, sshd.log (this script's and sshd's output), upper/ work/ root/ (own root).
# --fresh empties the host's disk (upper layer) and its log first; otherwise a restart keeps
# them, like a stopped and started instance.
# --watch-stdin: the host stops itself when stdin reaches EOF (its owner went away).
set -euo pipefail
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

die() { echo "start-host: $*" >&2; exit 2; }

# --------------------------------------------------------------------------------------------
# Stage 2: inside the new namespaces (PID 1 of the host).
if [[ "${1:-}" == "--inside" ]]; then
    HOSTDIR=$2
    R=$HOSTDIR/root
    NAME=$MOLTAR_HOST_NAME
    ADDR=$MOLTAR_HOST_ADDRESS
    HUSER=$MOLTAR_HOST_USER
    APT=${MOLTAR_HOST_APT:-}
    CLIENT_PUB=$MOLTAR_HOST_CLIENT_PUB
    WATCH=${MOLTAR_HOST_WATCH:-0}
    STATE=$MOLTAR_HOST_STATE

    # The root filesystem: / as the lower layer (only the / filesystem itself shows through,
    # so every submount is made fresh below).
    mount -t overlay overlay -o "lowerdir=/,upperdir=$HOSTDIR/upper,workdir=$HOSTDIR/work" "$R"
    mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
    mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$R/dev"
    mkdir "$R/dev/pts" "$R/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
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
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
    mkdir -p -m 0755 "$R/run/sshd" "$R/run/lock"
    # Hide the sandbox's state (keys, the other hosts' disks) where it shows through the lower layer.
    if [[ "$STATE" != / && -d "$R$STATE" ]]; then
        mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=0755 tmpfs "$R$STATE"
    fi
    if [[ -n "$APT" ]]; then
        mkdir -p "$R/srv/apt"
        mount --bind "$APT" "$R/srv/apt"
        mount -o remount,bind,ro,nosuid,nodev "$R/srv/apt"
    fi

    # What the host needs from the machine's side, copied in before the machine disappears.
    rm -f "$R"/etc/ssh/ssh_host_*
    install -m 0600 "$HOSTDIR/ssh_host_ed25519_key" "$R/etc/ssh/ssh_host_ed25519_key"
    install -m 0644 "$HOSTDIR/ssh_host_ed25519_key.pub" "$R/etc/ssh/ssh_host_ed25519_key.pub"
    install -m 0644 "$HOSTDIR/sshd_config" "$R/etc/ssh/sshd_config"
    install -m 0644 "$CLIENT_PUB" "$R/run/moltar-client.pub"

    cd "$R"
    pivot_root . .
    umount -l .
    cd /

    # Provision: identity, user, sudo, APT source.
    echo "$NAME" > /proc/sys/kernel/hostname
    echo "$NAME" > /etc/hostname
    printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$ADDR" "$NAME" > /etc/hosts
    if ! getent passwd "$HUSER" > /dev/null; then
        # '*' rather than the locked '!': with UsePAM no, sshd refuses locked accounts.
        useradd --create-home --shell /bin/bash --password '*' "$HUSER"
    fi
    IFS=: read -r _ _ uid gid _ home _ < <(getent passwd "$HUSER")
    install -d -m 0700 -o "$uid" -g "$gid" "$home/.ssh"
    install -m 0600 -o "$uid" -g "$gid" /run/moltar-client.pub "$home/.ssh/authorized_keys"
    printf '%s ALL=(ALL:ALL) NOPASSWD:ALL\n' "$HUSER" > /etc/sudoers.d/90-moltar-sandbox
    chmod 0440 /etc/sudoers.d/90-moltar-sandbox
    if [[ -n "$APT" ]]; then
        # Only the local repository: the machine's own sources are unreachable from here.
        rm -f /etc/apt/sources.list
        find /etc/apt/sources.list.d -mindepth 1 -maxdepth 1 ! -name moltar-sandbox.list -delete
        echo 'deb [trusted=yes] file:/srv/apt ./' > /etc/apt/sources.list.d/moltar-sandbox.list
    fi

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
    echo "start-host: $NAME ($ADDR) own root ready, exec sshd"
    exec -c /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
fi

# --------------------------------------------------------------------------------------------
# Stage 1: on the machine.
STATE= NAME= ADDR= PORT=22 HUSER= CLIENT_PUB= APT= SHARED=0 FRESH=0 WATCH=0
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
        *) die "unknown argument: $1" ;;
    esac
done
[[ -n "$STATE" && -n "$NAME" && -n "$ADDR" ]] || die "--state-dir, --name and --address are required"
[[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] || die "bad host name: $NAME"
[[ "$ADDR" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "address must be a loopback IPv4 address: $ADDR"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT"
STATE=$(realpath -m -- "$STATE")
[[ "$STATE" != *[,:[:space:]]* ]] || die "state dir must not contain commas, colons or spaces: $STATE"
CLIENT_PUB=${CLIENT_PUB:-$STATE/client_ed25519.pub}
[[ -r "$CLIENT_PUB" ]] || die "client public key not readable: $CLIENT_PUB"
if [[ -n "$APT" ]]; then
    APT=$(realpath -e -- "$APT") || die "APT repository not found"
fi
if ((EUID != 0)); then SHARED=1; fi

HOSTDIR=$STATE/hosts/$NAME
mkdir -p "$HOSTDIR"
LOG=$HOSTDIR/sshd.log
if ((FRESH)); then : > "$LOG"; fi
exec >> "$LOG" 2>&1
echo "start-host: === $(date -u +%FT%TZ) $NAME $ADDR:$PORT pid $$ $( ((SHARED)) && echo shared-root || echo own-root)"

KEY=$HOSTDIR/ssh_host_ed25519_key
if [[ ! -s "$KEY" || ! -s "$KEY.pub" ]]; then
    rm -f "$KEY" "$KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "$NAME" -f "$KEY"
fi
chmod 0600 "$KEY"

common_config() {
    cat <<EOF
ListenAddress $ADDR:$PORT
PidFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding yes
MaxStartups 200
MaxSessions 100
LoginGraceTime 30
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LogLevel INFO
EOF
}

if ((SHARED)); then
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

HUSER=${HUSER:-ubuntu}
[[ "$HUSER" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "bad user name: $HUSER"
{
    common_config
    echo "HostKey /etc/ssh/ssh_host_ed25519_key"
    echo "AuthorizedKeysFile .ssh/authorized_keys"
    echo "PermitRootLogin prohibit-password"
} > "$HOSTDIR/sshd_config"
if ((FRESH)) && [[ -e "$HOSTDIR/upper" || -e "$HOSTDIR/work" ]]; then
    rm -rf "$HOSTDIR/upper" "$HOSTDIR/work"
fi
mkdir -p "$HOSTDIR/upper" "$HOSTDIR/work" "$HOSTDIR/root"

export MOLTAR_HOST_STATE=$STATE MOLTAR_HOST_NAME=$NAME MOLTAR_HOST_ADDRESS=$ADDR MOLTAR_HOST_USER=$HUSER \
    MOLTAR_HOST_APT=$APT MOLTAR_HOST_CLIENT_PUB=$CLIENT_PUB MOLTAR_HOST_WATCH=$WATCH
exec unshare --mount --propagation private --uts --pid --fork --kill-child \
    /bin/bash "$(realpath -- "${BASH_SOURCE[0]}")" --inside "$HOSTDIR"
