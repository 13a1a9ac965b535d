#!/bin/busybox sh
# /init of the VM test's initramfs (`cargo xtask vm`): busybox, the static agent and the
# modules of xtask/src/vm/modules.rs. The VM itself is the gateway; two devices and the
# "internet" are network namespaces held by `unshare -n sleep` processes.
#
#   d1 (02:00:00:00:00:01) ─┐ lan1                            ┌─ 8.8.8.8, 2001:4860:4860::8888 (US)
#   d2 (02:00:00:00:00:02) ─┴─ br-lan ── gateway ── wan0 ══ inet ─┼─ 193.0.0.1 (NL)
#                     10.77.0.1/24 fd77::1/64   198.18.0.1/30      └─ 36.110.0.1 (CN)
#
# Every address lives inside this VM (QEMU gives it no network card). The agent runs with
# `--allow US --block CN`, so NL raises one alert and CN is dropped in the kernel. Results go
# to the serial console as `ETVM <what> ...` lines that xtask parses (xtask/src/vm/verdict.rs);
# the last one is `ETVM END <status>`.

/bin/busybox --install -s /bin
export PATH=/bin NO_COLOR=1

say() { echo "ETVM $*"; }
finish() {
    say "END $1"
    sync
    poweroff -f
    sleep 60
}
fail() {
    say "FAIL $*"
    [ -f /tmp/agent.log ] && sed 's/^/ETVM agent /' /tmp/agent.log
    finish 1
}
# `inns PID command...`: runs a command in the network namespace of PID.
inns() {
    p=$1
    shift
    nsenter -t "$p" -n "$@"
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf || fail "mount bpffs"
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /var/lib/egress-tracer
say "BEGIN"
say "uname $(uname -r)"
say "machine $(uname -m)"

for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || fail "insmod $m"
done
say "modules $(cat /lib/modules/order | tr '\n' ' ')"

NS_SYSCTLS="net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
 net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
 net.ipv6.conf.all.autoconf=0 net.ipv6.conf.default.autoconf=0"

# A namespace: prints the PID of the process holding it.
netns() {
    # Its output is not the caller's `$(...)`: that would wait for the holder to exit.
    unshare -n sleep 100000 </dev/null >/dev/null 2>&1 &
    pid=$!
    # unshare has created the namespace once the holder is in another one than ours.
    while [ "$(readlink /proc/$pid/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do
        usleep 10000
    done
    inns "$pid" ip link set lo up
    inns "$pid" sysctl -qw $NS_SYSCTLS
    echo "$pid"
}

# `veth NAME PID IFACE`: a veth pair, NAME here and IFACE in the namespace of PID. Busybox's
# `ip` names the peer itself (vethN), so it is looked up, moved and renamed.
veth() {
    ip link add "$1" type veth || fail "ip link add $1 type veth"
    peer=$(ip -o link show | sed -n "s/^[0-9]*: \([^@:]*\)@$1:.*/\1/p")
    [ -n "$peer" ] || fail "no peer of $1"
    ip link set "$peer" netns "$2" || fail "moving $peer to $2"
    inns "$2" ip link set "$peer" name "$3"
    inns "$2" ip link set "$3" up
    ip link set "$1" up
}

ip link set lo up
sysctl -qw $NS_SYSCTLS net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

ip link add br-lan type bridge || fail "ip link add br-lan type bridge"
ip link set br-lan address 02:00:00:00:01:fe
ip link set br-lan up
ip addr add 10.77.0.1/24 dev br-lan
ip -6 addr add fd77::1/64 dev br-lan

D1=$(netns)
D2=$(netns)
INET=$(netns)
n=1
for d in $D1 $D2; do
    veth "lan$n" "$d" eth0
    ip link set "lan$n" master br-lan
    inns "$d" ip link set eth0 address "02:00:00:00:00:0$n"
    inns "$d" ip addr add "10.77.0.1$n/24" dev eth0
    inns "$d" ip -6 addr add "fd77::1$n/64" dev eth0
    inns "$d" ip route add default via 10.77.0.1
    inns "$d" ip -6 route add default via fd77::1
    n=$((n + 1))
done

veth wan0 "$INET" wan0
ip addr add 198.18.0.1/30 dev wan0
ip -6 addr add fd00:ffff::1/64 dev wan0
ip route add default via 198.18.0.2
ip -6 route add default via fd00:ffff::2
inns "$INET" ip addr add 198.18.0.2/30 dev wan0
inns "$INET" ip -6 addr add fd00:ffff::2/64 dev wan0
for a in 8.8.8.8/32 193.0.0.1/32 36.110.0.1/32; do
    inns "$INET" ip addr add "$a" dev lo
done
for a in 2001:4860:4860::8888/128; do
    inns "$INET" ip -6 addr add "$a" dev lo
done
inns "$INET" ip route add 10.77.0.0/16 via 198.18.0.1
inns "$INET" ip -6 route add fd77::/16 via fd00:ffff::1

# Neighbours resolved before the agent starts: every ping below crosses a warm path.
for d in $D1 $D2; do
    inns "$d" ping -q -c 1 -W 5 10.77.0.1 >/dev/null || fail "lab: ping the gateway"
    inns "$d" ping6 -q -c 1 -W 5 fd77::1 >/dev/null || fail "lab: ping6 the gateway"
done
ping -q -c 1 -W 5 198.18.0.2 >/dev/null || fail "lab: ping the internet"
ping6 -q -c 1 -W 5 fd00:ffff::2 >/dev/null || fail "lab: ping6 the internet"
inns "$D1" ping -q -c 1 -W 5 8.8.8.8 >/dev/null || fail "lab: no route to 8.8.8.8"
say "lab up"

egress-tracer check --lan br-lan >/tmp/check.txt 2>&1
say "check-status $?"
sed 's/^/ETVM check /' /tmp/check.txt

egress-tracer run --lan br-lan --allow US --block CN --interval 0 --watch-interval 0 \
    --listen 127.0.0.1:9977 >/tmp/agent.log 2>&1 &
AGENT=$!
up=0
for _ in $(seq 1 600); do
    if wget -q -O /tmp/ready http://127.0.0.1:9977/metrics 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$AGENT" 2>/dev/null || fail "the agent exited"
    sleep 1
done
[ "$up" = 1 ] || fail "the agent did not serve /metrics within 600 s"
say "agent up"

# `ping_from PID ping|ping6 ADDR COUNT`; blocked pings get no reply, so no status check there.
ping_from() {
    inns "$1" "$2" -q -c "$4" -i 0.2 -W 2 "$3" >/dev/null
}
ping_from "$D1" ping 8.8.8.8 5 || fail "ping 8.8.8.8 (US, approved)"
ping_from "$D1" ping 193.0.0.1 3 || fail "ping 193.0.0.1 (NL, alert)"
ping_from "$D2" ping6 2001:4860:4860::8888 2 || fail "ping6 2001:4860:4860::8888 (US)"
if ping_from "$D2" ping 36.110.0.1 4; then fail "36.110.0.1 (CN) answered: not blocked"; fi
say "pings sent"
# The alerts reach the agent through the kernel's ring buffer: give it a moment.
sleep 2

wget -q -O /tmp/metrics http://127.0.0.1:9977/metrics || fail "GET /metrics"
grep -E '^egress_tracer_(packets_total|bytes_total|blocked_packets_total|policy_violations_total)' \
    /tmp/metrics | sed 's/^/ETVM metric /'
wget -q -O /tmp/alerts http://127.0.0.1:9977/api/v1/alerts || fail "GET /api/v1/alerts"
say "alerts $(tr -d '\n' </tmp/alerts)"
wget -q -O /tmp/devices http://127.0.0.1:9977/api/v1/devices || fail "GET /api/v1/devices"
say "devices $(tr -d '\n' </tmp/devices)"
kill "$AGENT"
sleep 1
sed 's/^/ETVM agent /' /tmp/agent.log
finish 0
