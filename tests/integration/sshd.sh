#!/usr/bin/env bash
# Integration: OpenSSH's sshd -D under coro-run on a loopback port (its
# closefrom(3) at start and in every forked child must leave corun's own fds
# alone), driven by the native ssh and scp: a command's output and exit
# status, and 10 MiB copied each way (internal-sftp, inside sshd) with the
# sha256 checked.
. "$(dirname "$0")/lib.sh"
needs ssh scp ssh-keygen sha256sum python3 timeout
[ -x /usr/sbin/sshd ] || { echo "SKIP: /usr/sbin/sshd not installed (openssh-server)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: sshd's privilege separation needs root"; exit 77; }
mkdir -p /run/sshd                       # sshd's privilege-separation directory
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listen() {   # port: until a socket listens on 127.0.0.1:port (10 s)
    local hex; hex=$(printf '0100007F:%04X' "$1")
    for _ in $(seq 200); do
        awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp && return 0
        sleep 0.05
    done
    echo "FAIL: nothing listens on port $1"; cat "$work/sshd.log"; exit 1
}

ssh-keygen -q -t ed25519 -N '' -C corun-test-host -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C corun-test-user -f "$work/user_key"
cp "$work/user_key.pub" "$work/authorized_keys"
cat > "$work/sshd_config" <<CONF
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
CONF
port=$(free_port)
spawn_bg timeout 100 "${corun[@]}" /usr/sbin/sshd -D -e -f "$work/sshd_config" -p "$port" \
    2> "$work/sshd.log"
wait_listen "$port"
opts=(-F /dev/null -i "$work/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
      -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR)
user=$(id -un)

# ---- a command: its output and exit status ------------------------------------------
status=0
out=$(timeout 30 ssh "${opts[@]}" -p "$port" "$user@127.0.0.1" "sh -c 'echo hi; exit 3'") ||
    status=$?
check '[ "$out" = hi ]' "the command printed '$out', expected 'hi'"
check '[ "$status" = 3 ]' "ssh exited with status $status, expected the command's 3"
echo "command: output '$out', status $status"

# ---- scp 10 MiB each way -------------------------------------------------------------
head -c $((10 << 20)) /dev/urandom > "$work/up"
timeout 60 scp "${opts[@]}" -q -P "$port" "$work/up" "$user@127.0.0.1:$work/remote" ||
    check false "scp to the server exited with status $?"
timeout 60 scp "${opts[@]}" -q -P "$port" "$user@127.0.0.1:$work/remote" "$work/down" ||
    check false "scp from the server exited with status $?"
sum() { sha256sum < "$1" 2>/dev/null | cut -d' ' -f1; }
check '[ "$(sum "$work/up")" = "$(sum "$work/remote")" ]' "the file copied up differs (sha256)"
check '[ "$(sum "$work/up")" = "$(sum "$work/down")" ]' "the file copied down differs (sha256)"
echo "scp: 10 MiB up and down, sha256 $(sum "$work/down" | cut -c1-16)..."
[ "$fail" = 0 ] || { echo "--- sshd's log ---"; cat "$work/sshd.log"; }
finish
