//! `cargo xtask vm-systemd`: the .deb's unit under real systemd, in a Debian bookworm VM.
//!
//! The root is built by `mmdebstrap` (variant `essential` plus systemd, udev, iproute2,
//! iputils-ping, curl for HTTP, bpftool and Debian's own kernel, `linux-image-amd64`, whose
//! initramfs-tools makes an initrd with only the virtio block driver and ext4), from the Debian
//! sources this machine's apt uses. It is cached as a tarball under the project cache
//! (`cache_dir()/vm-systemd/<key>/`), keyed on everything that goes into it, so a rerun only
//! unpacks it, installs the .deb with dpkg inside it (its postinst enables the unit, as on any
//! machine), adds the test driver and makes an ext4 image (`mkfs.ext4 -d`).
//!
//! QEMU (KVM when /dev/kvm works, no network device) boots the image with that kernel and
//! systemd as PID 1; the console goes to `console.log`, the driver's results to a second serial
//! port, `results.log`. The driver, a oneshot unit after boot, builds a lab (a `br-lan` bridge
//! with a device namespace on a veth, an "internet" namespace owning 36.110.0.1 (CN) and 8.8.8.8
//! (US) behind a WAN veth), writes /etc/egress-tracer/config.toml as a user would and proves:
//! `systemctl start` reaches READY with the shipped unit and its sandbox, exact counts after
//! pings, `systemctl reload` applying a new device name and policy, a `kill -9` restarted by
//! `Restart=` with the pinned counts continuing exactly, `systemctl stop` leaving no filters,
//! and the live `systemd-analyze security` score. Then it powers off and xtask checks the
//! results, the score against the offline one the test suite computes.

use std::{
    fmt::Write as _,
    fs,
    hash::{Hash as _, Hasher as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    run::{cmd, describe, is_root, status, succeeds, target_dir, workspace_root},
    setup::Ready,
    steps::Outcome,
};

/// Options of `cargo xtask vm-systemd`.
#[derive(Debug, clap::Args)]
pub(crate) struct VmSystemdArgs {
    /// Use this .deb instead of building one (`cargo xtask dist deb` makes it).
    #[arg(long, value_name = "FILE")]
    deb: Option<PathBuf>,
    /// Rebuild the cached root even if its inputs did not change.
    #[arg(long)]
    rebuild: bool,
    /// The VM's kernel: bookworm's own (6.1) or bookworm-backports' (6.12).
    #[arg(long, value_enum, default_value_t = Kernel::Bookworm)]
    kernel: Kernel,
    /// Seconds the VM may run before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
}

/// Which Debian kernel the VM boots (`linux-image-amd64` of which suite).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum Kernel {
    /// Bookworm's own, 6.1.
    Bookworm,
    /// Bookworm-backports', 6.12 (TCX).
    Backports,
}

impl Kernel {
    /// The package to install and the extra apt entries it needs, from `sources`.
    fn package_and_sources(self, sources: &[String]) -> (String, Vec<String>) {
        match self {
            Kernel::Bookworm => ("linux-image-amd64".into(), Vec::new()),
            Kernel::Backports => {
                let suite = format!("{SUITE}-backports");
                let have = sources.iter().any(|l| l.split_whitespace().any(|w| w == suite));
                let extra = if have {
                    Vec::new()
                } else {
                    sources
                        .iter()
                        .filter(|l| l.split_whitespace().any(|w| w == SUITE))
                        .map(|l| l.replacen(&format!(" {SUITE} "), &format!(" {suite} "), 1))
                        .collect()
                };
                (format!("linux-image-amd64/{suite}"), extra)
            }
        }
    }
}

/// The Debian release of the VM (its kernel, systemd and the archive's suite).
const SUITE: &str = "bookworm";

/// Packages on top of `--variant=essential`: systemd as PID 1, udev, the lab's tools, curl
/// (for the agent's HTTP API), bpftool (what is attached after a stop) and the kernel.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "iproute2",
    "iputils-ping",
    "busybox",
    // The agent's HTTP API: bookworm's busybox wget crashed on /metrics (exit 139).
    "curl",
    // /bin/kill, which the unit's ExecReload= runs (Priority: important, on every normal
    // Debian system, but not in the essential variant).
    "procps",
    "bpftool",
];

/// Run before the packages are installed: initramfs-tools then builds a small initrd with only
/// the modules the root needs (virtio PCI and block, ext4), not `MODULES=most`.
const INITRAMFS_HOOK: &str = r#"set -e
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
echo MODULES=list > "$1/etc/initramfs-tools/conf.d/egress-tracer-vm.conf"
cat > "$1/etc/initramfs-tools/hooks/egress-tracer-vm" <<'EOF'
#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4
EOF
chmod 755 "$1/etc/initramfs-tools/hooks/egress-tracer-vm""#;

/// Bumped when the way the root is built changes in a way the inputs above do not show.
const ROOT_FORMAT: u32 = 1;

/// The oneshot unit that runs the driver once the system is up.
const DRIVER_UNIT: &str = "\
[Unit]
Description=egress-tracer VM test driver (cargo xtask vm-systemd)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/et-vm-driver
# Whatever happens to the driver, the VM powers off after it (at the latest after 15 minutes).
ExecStopPost=/bin/systemctl --no-block poweroff
RuntimeMaxSec=900
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
";

/// The test driver, run inside the VM by `et-vm-driver.service`. Every result is a line on the
/// second serial port (`/dev/ttyS1`): `ET PASS|FAIL|INFO <check>: <detail>`, `ET SCORE live N`,
/// and last `ET DONE pass|fail`. It goes on after a failed check where it can, and powers off.
const DRIVER: &str = r#"#!/bin/sh
# egress-tracer VM test driver: the .deb's unit under real systemd (cargo xtask vm-systemd).
exec 3>/dev/ttyS1
failed=0
say() { echo "ET $*" >&3; echo "ET $*"; }
pass() { say "PASS $1: $2"; }
fail() { say "FAIL $1: $2"; failed=1; }
info() { say "INFO $1: $2"; }
unit=egress-tracer
conf=/etc/egress-tracer/config.toml
mac=02:00:00:00:00:01
api() { curl -sS -m 5 "http://127.0.0.1:9977$1" 2>/dev/null; }
# counter NAME COUNTRY DIRECTION: the value of egress_tracer_NAME{mac,country,direction} (0 if none)
counter() {
    v=$(api /metrics | grep "^egress_tracer_$1{" | grep "mac=\"$mac\"" | grep "country=\"$2\"" \
        | grep "direction=\"$3\"" | awk '{print $NF}' | head -n 1)
    echo "${v:-0}"
}
# counts CN US: checks packets and bytes (98-byte ping frames) both ways for CN and US
counts() {
    got="" ok=1
    for pair in "CN $1" "US $2"; do
        set -- $pair
        for dir in upload download; do
            p=$(counter packets_total "$1" $dir)
            b=$(counter bytes_total "$1" $dir)
            got="$got $1/$dir=${p}p/${b}B"
            awk -v p="$p" -v b="$b" -v n="$2" 'BEGIN { exit !(p + 0 == n && b + 0 == n * 98) }' || ok=0
        done
    done
    echo "$got"
    [ $ok = 1 ]
}
pings() { # ADDRESS N
    ip netns exec dev1 ping -n -q -c "$2" -i 0.2 -W 2 "$1" >/dev/null 2>&1 || fail ping "ping -c $2 $1 from dev1 failed"
}
main_pid() { systemctl show -p MainPID --value $unit; }
journal() { journalctl -u $unit -b --no-pager -o cat 2>/dev/null | tail -n "$1" | sed 's/^/ET LOG /' >&3; }
score_of() { sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | head -n 1; }

info kernel "$(uname -r), systemd $(systemctl --version | head -n 1 | awk '{print $2}')"
info package "$(dpkg-query -W -f='${Package} ${Version} ${Status}' egress-tracer)"
# The postinst enabled the unit; at boot it started with the shipped config (lan = ["br0"],
# not on this machine) and must have refused, saying why.
info boot "is-enabled=$(systemctl is-enabled $unit) state=$(systemctl is-active $unit): $(journalctl -u $unit -b --no-pager -o cat 2>/dev/null | grep -m 1 -i -e error -e br0)"
systemctl stop $unit
systemctl reset-failed $unit 2>/dev/null
rm -rf /sys/fs/bpf/egress-tracer

# The lab: this machine is the gateway. br-lan (10.77.0.1/24) holds the veth of device dev1
# (10.77.0.11, MAC 02:00:00:00:00:01); wan0 leads to the "internet" namespace, which owns
# 36.110.0.1 (CN) and 8.8.8.8 (US) on its loopback. The VM has no network card: nothing leaves.
lab() { "$@" || fail lab "$*"; }
lab ip link add br-lan type bridge
lab ip addr add 10.77.0.1/24 dev br-lan
lab ip link set br-lan up
lab ip netns add dev1
lab ip -n dev1 link set lo up
lab ip netns exec dev1 sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'
lab ip link add lan1 type veth peer name eth0 netns dev1
lab ip link set lan1 master br-lan up
lab ip -n dev1 link set eth0 address $mac up
lab ip -n dev1 addr add 10.77.0.11/24 dev eth0
lab ip -n dev1 route add default via 10.77.0.1
lab ip netns add inet
lab ip -n inet link set lo up
lab ip link add wan0 type veth peer name wan0 netns inet
lab ip addr add 198.18.0.1/30 dev wan0
lab ip link set wan0 up
lab ip -n inet addr add 198.18.0.2/30 dev wan0
lab ip -n inet link set wan0 up
lab ip -n inet addr add 36.110.0.1/32 dev lo
lab ip -n inet addr add 8.8.8.8/32 dev lo
lab ip -n inet route add 10.77.0.0/24 via 198.18.0.1
lab ip route add default via 198.18.0.2
echo 1 > /proc/sys/net/ipv4/ip_forward
ip netns exec dev1 ping -n -q -c 1 -W 2 10.77.0.1 >/dev/null || fail lab "dev1 cannot reach the gateway"
ip netns exec dev1 ping -n -q -c 1 -W 2 8.8.8.8 >/dev/null || fail lab "dev1 cannot reach 8.8.8.8"

# The user's edit of the shipped config: the LAN bridge; reload only on `systemctl reload`.
sed -i -e 's/^lan = \["br0"\]$/lan = ["br-lan"]/' -e 's/^#watch_interval = 5$/watch_interval = 0/' $conf
grep -q '^lan = \["br-lan"\]$' $conf && grep -q '^watch_interval = 0$' $conf || fail config "the edit did not apply"
egress-tracer check --config $conf >/tmp/check.txt 2>&1
info check "egress-tracer check: exit $? ($(grep -ci ok /tmp/check.txt) ok lines)"

# start: blocks until READY=1 (Type=notify) or fails.
t0=$(date +%s.%N)
if systemctl start $unit; then
    t1=$(date +%s.%N)
    pid=$(main_pid)
    st=$(grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status | tr '\t\n' '  ')
    if [ "$(systemctl is-active $unit)" = active ] && echo "$st" | grep -q 'CapBnd: 000000c000001000 .*NoNewPrivs: 1 .*Seccomp: 2'; then
        pass start "READY in $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b - a}') s; active, MainPID $pid, $st(bpf, net_admin, perfmon only)"
    else
        fail start "active=$(systemctl is-active $unit), MainPID $pid, $st"
    fi
else
    fail start "systemctl start failed: $(systemctl show -p Result --value $unit)"
    # The agent's own words, without the verifier's instruction dump.
    journalctl -u $unit -b --no-pager -o cat | grep -v -E '^[0-9]+: |^; |^ET ' | tail -n 12 | sed 's/^/ET LOG /' >&3
    # The same agent and config outside the sandbox, for comparison.
    timeout 25 egress-tracer run --config $conf >/tmp/unsandboxed.txt 2>&1
    info unsandboxed "$(grep -v -E '^[0-9]+: |^; ' /tmp/unsandboxed.txt | grep -i -m 3 -e error -e attached -e serving | tr '\n' ' ')"
fi
info attached "$(tc filter show dev br-lan ingress | grep -c bpf) ingress and $(tc filter show dev br-lan egress | grep -c bpf) egress bpf filters on br-lan"
[ "$(counter packets_total CN upload)" = 0 ] || fail counts "counts before any ping"

pings 36.110.0.1 5
pings 8.8.8.8 3
if got=$(counts 5 3); then pass counts "5 pings CN, 3 US:$got"; else
    fail counts "want CN 5, US 3:$got"
    curl -sS -m 5 -o /tmp/metrics.txt http://127.0.0.1:9977/metrics >/tmp/curl.txt 2>&1
    info metrics "curl exit $?: $(tr '\n' ' ' </tmp/curl.txt) $(grep -m 2 '^egress_tracer_packets_total' /tmp/metrics.txt | tr '\n' ' ')"
fi

# reload: a device name and a policy that alerts on CN.
api /api/v1/devices | grep -q vm-lab-phone && fail reload "the name is there before the reload"
sed -i 's/^#alert = \[\]$/alert = ["CN"]/' $conf
printf '\n[[device]]\nmac = "%s"\nname = "vm-lab-phone"\n' $mac >> $conf
pid=$(main_pid)
if systemctl reload $unit; then
    named=0
    for _ in $(seq 50); do
        api /api/v1/devices | grep -q '"vm-lab-phone"' && { named=1; break; }
        sleep 0.2
    done
    pings 36.110.0.1 2
    sleep 1
    alerts=$(api /api/v1/alerts | grep -o '"country":"CN"' | wc -l)
    ok=$(api /metrics | grep '^egress_tracer_reloads_total{' | grep 'result="success"' | awk '{print $NF}')
    if [ $named = 1 ] && [ "$alerts" -ge 1 ] && [ "$(main_pid)" = "$pid" ] && [ "${ok:-0}" -ge 1 ]; then
        pass reload "same MainPID $pid; /api/v1/devices names $mac vm-lab-phone; $alerts CN alert(s) after 2 pings; reloads_total{result=success} $ok"
    else
        fail reload "named=$named alerts=$alerts pid $pid -> $(main_pid) reloads=$ok"
        journal 20
    fi
else
    fail reload "systemctl reload failed"
fi
if got=$(counts 7 3); then pass counts-after-reload "$got"; else fail counts-after-reload "want CN 7, US 3:$got"; fi

# live score, while it runs
live=$(systemd-analyze security $unit --no-pager 2>&1 | score_of)
offline=$(systemd-analyze security --offline=true --no-pager /lib/systemd/system/$unit.service 2>&1 | score_of)
say "SCORE live ${live:-none}"
say "SCORE offline-in-vm ${offline:-none}"

# kill -9: Restart=on-failure brings it back (RestartSec=5s); the pinned counters continue.
pid=$(main_pid)
back=0
[ "$pid" -gt 0 ] && kill -9 "$pid"
for _ in $(seq 60); do
    sleep 1
    new=$(main_pid)
    if [ "$(systemctl is-active $unit)" = active ] && [ "$new" != 0 ] && [ "$new" != "$pid" ]; then back=1; break; fi
done
if [ $back = 1 ]; then
    restarts=$(systemctl show -p NRestarts --value $unit)
    if got=$(counts 7 3); then kept="kept:$got"; else kept="LOST:$got"; fi
    pings 36.110.0.1 4
    pings 8.8.8.8 1
    if echo "$kept" | grep -q '^kept' && got=$(counts 11 4); then
        pass restart "kill -9 $pid -> MainPID $new, NRestarts=$restarts; counts $kept; after 4 CN + 1 US pings:$got"
    else
        fail restart "MainPID $new, NRestarts=$restarts; counts $kept; want CN 11, US 4 after pings:$(counts 11 4)"
    fi
else
    fail restart "not active again within 60 s after kill -9 $pid: $(systemctl is-active $unit)"
    journal 30
fi

# stop: the programs detach (no tc filters, nothing bpftool sees on the LAN bridge).
if systemctl stop $unit; then
    ing=$(tc filter show dev br-lan ingress)
    egr=$(tc filter show dev br-lan egress)
    net=$(bpftool net show dev br-lan 2>&1 | grep -c 'br-lan')
    if [ "$(systemctl is-active $unit)" = inactive ] && [ -z "$ing$egr" ] && [ "$net" = 0 ]; then
        pass stop "inactive (Result=$(systemctl show -p Result --value $unit)); tc filter show dev br-lan ingress/egress: empty; bpftool net show dev br-lan: nothing; pins kept: $(ls /sys/fs/bpf/egress-tracer | wc -l) in /sys/fs/bpf/egress-tracer"
    else
        fail stop "state $(systemctl is-active $unit); ingress: $ing; egress: $egr; bpftool lines: $net"
    fi
else
    fail stop "systemctl stop failed"
fi

if [ $failed = 0 ]; then say "DONE pass"; else journal 40; say "DONE fail"; fi
sync
"#;

/// Why this machine cannot run the VM, if it cannot.
fn missing() -> Option<String> {
    if std::env::consts::ARCH != "x86_64" {
        return Some(format!("the systemd VM is x86_64 and this is {}", std::env::consts::ARCH));
    }
    if !is_root() {
        return Some("needs root (mmdebstrap --mode=root, chroot, mkfs.ext4 -d)".into());
    }
    for (program, package) in
        [("qemu-system-x86_64", "qemu-system-x86"), ("mmdebstrap", "mmdebstrap")]
    {
        if !succeeds(cmd(program, &["--version"])) {
            return Some(format!(
                "no {program} (`cargo xtask setup` installs {package}; apt could not?)"
            ));
        }
    }
    None
}

/// The entries for `suite` (and its `-updates`, `-security`) in apt sources `files` (path,
/// contents), as one-line `deb` entries: deb822 `.sources` stanzas and `.list` lines, enabled
/// `deb` types only, other suites (third-party repositories) left out.
fn suite_sources(files: &[(PathBuf, String)], suite: &str) -> Vec<String> {
    let wanted = |s: &str| s == suite || s.strip_prefix(suite).is_some_and(|r| r.starts_with('-'));
    let mut out = Vec::new();
    for (path, text) in files {
        if path.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                };
                let types = field("Types").unwrap_or_default();
                if !types.split_whitespace().any(|t| t == "deb")
                    || field("Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no"))
                {
                    continue;
                }
                let comps = field("Components").unwrap_or_default();
                let opts =
                    field("Signed-By").map_or(String::new(), |k| format!("[signed-by={k}] "));
                for uri in field("URIs").unwrap_or_default().split_whitespace() {
                    for s in field("Suites").unwrap_or_default().split_whitespace() {
                        if wanted(s) {
                            out.push(format!("deb {opts}{uri} {s} {comps}"));
                        }
                    }
                }
            }
        } else {
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("deb ") else { continue };
                let rest = rest.trim_start();
                let (opts, rest) = match rest.strip_prefix('[') {
                    Some(r) => match r.split_once(']') {
                        Some((o, r)) => (format!("[{o}] "), r),
                        None => continue,
                    },
                    None => (String::new(), rest),
                };
                let mut words = rest.split_whitespace();
                let (Some(uri), Some(s)) = (words.next(), words.next()) else { continue };
                if wanted(s) {
                    let comps: Vec<&str> = words.collect();
                    out.push(format!("deb {opts}{uri} {s} {}", comps.join(" ")));
                }
            }
        }
    }
    out
}

/// This machine's apt sources for [`SUITE`] (see [`suite_sources`]).
fn host_sources() -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let main = PathBuf::from("/etc/apt/sources.list");
    if let Ok(text) = fs::read_to_string(&main) {
        files.push((main, text));
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "list" || e == "sources") {
                let text = fs::read_to_string(&path)?;
                files.push((path, text));
            }
        }
    }
    Ok(suite_sources(&files, SUITE))
}

/// The cache key of a root built from `sources`: every input of [`build_root`].
fn root_key(sources: &[String], kernel: Kernel) -> String {
    let mut h = std::hash::DefaultHasher::new();
    (ROOT_FORMAT, SUITE, PACKAGES, INITRAMFS_HOOK, sources, kernel).hash(&mut h);
    format!("{SUITE}-{:016x}", h.finish())
}

/// A cached root: the tarball and the kernel and initrd from its /boot.
struct Root {
    tar: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

impl Root {
    fn in_dir(dir: &Path) -> anyhow::Result<Root> {
        let boot = dir.join("boot");
        let find = |prefix: &str| -> anyhow::Result<PathBuf> {
            let mut found: Vec<PathBuf> = fs::read_dir(&boot)
                .with_context(|| format!("reading {}", boot.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
                .collect();
            found.sort();
            found.pop().with_context(|| format!("no {prefix}* in {}", boot.display()))
        };
        Ok(Root {
            tar: dir.join("root.tar"),
            kernel: find("vmlinuz-")?,
            initrd: find("initrd.img-")?,
        })
    }
}

/// What went wrong building the root: a reason to skip (the archive is unreachable) or an error.
enum BuildError {
    Unreachable(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for BuildError {
    fn from(e: anyhow::Error) -> Self {
        BuildError::Other(e)
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::Other(e.into())
    }
}

/// The cached root for `sources`, built with mmdebstrap if it is missing (or `rebuild`).
fn root(sources: &[String], kernel: Kernel, rebuild: bool) -> Result<Root, BuildError> {
    let base = crate::setup::cache_dir().join("vm-systemd");
    let dir = base.join(root_key(sources, kernel));
    if !rebuild && dir.join("done").exists() {
        println!("vm-systemd: cached root {}", dir.display());
        return Ok(Root::in_dir(&dir)?);
    }
    println!("vm-systemd: building the {SUITE} root with mmdebstrap into {}", dir.display());
    let started = Instant::now();
    let tmp = base.join(format!("{}.tmp", root_key(sources, kernel)));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let list = tmp.join("sources.list");
    fs::write(&list, sources.join("\n") + "\n")?;
    let mut mm = cmd("mmdebstrap", &["--variant=essential", "--mode=root"]);
    let (kernel_package, extra) = kernel.package_and_sources(sources);
    if !extra.is_empty() {
        fs::write(
            &list,
            sources.iter().chain(&extra).cloned().collect::<Vec<_>>().join("\n") + "\n",
        )?;
    }
    mm.arg(format!("--include={},{kernel_package}", PACKAGES.join(",")))
        .arg(format!("--essential-hook={INITRAMFS_HOOK}"))
        .arg(format!("--customize-hook=copy-out /boot {}", tmp.display()))
        .arg(SUITE)
        .arg(tmp.join("root.tar"))
        .arg(&list);
    println!("$ {}", describe(&mm));
    let out = mm.stderr(Stdio::piped()).output().context("running mmdebstrap")?;
    let log = String::from_utf8_lossy(&out.stderr);
    fs::write(tmp.join("mmdebstrap.log"), log.as_bytes())?;
    if !out.status.success() {
        let tail: Vec<&str> =
            log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        let tail = tail.join("\n");
        let unreachable = ["Temporary failure resolving", "Could not connect", "Failed to fetch"];
        if unreachable.iter().any(|u| log.contains(u)) {
            return Err(BuildError::Unreachable(format!(
                "the Debian archive is unreachable for mmdebstrap: {}",
                tail.lines().find(|l| unreachable.iter().any(|u| l.contains(u))).unwrap_or("")
            )));
        }
        return Err(BuildError::Other(anyhow::anyhow!(
            "mmdebstrap failed ({}):\n{tail}",
            out.status
        )));
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)?;
    fs::write(dir.join("done"), "")?;
    println!("vm-systemd: root built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(Root::in_dir(&dir)?)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(path.parent().expect("a file in a directory"))?;
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Unpacks `root` into `work/root`, installs `deb` in it with dpkg, adds the driver and makes
/// `work/root.img`; returns the image.
fn image(root: &Root, deb: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("root");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let mut tar = cmd("tar", &["-xf"]);
    tar.arg(&root.tar).arg("-C").arg(&dir);
    status(tar).context("unpacking the cached root")?;
    fs::copy(deb, dir.join("tmp/egress-tracer.deb"))
        .with_context(|| format!("copying {}", deb.display()))?;
    let mut dpkg = cmd("chroot", &[]);
    dpkg.arg(&dir).args(["dpkg", "-i", "/tmp/egress-tracer.deb"]);
    status(dpkg).context("installing the .deb in the VM's root")?;
    fs::remove_file(dir.join("tmp/egress-tracer.deb"))?;
    write_file(&dir.join("etc/hostname"), "et-vm\n", 0o644)?;
    write_file(&dir.join("usr/local/sbin/et-vm-driver"), DRIVER, 0o755)?;
    write_file(&dir.join("etc/systemd/system/et-vm-driver.service"), DRIVER_UNIT, 0o644)?;
    let wants = dir.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("et-vm-driver.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/et-vm-driver.service", &link)?;
    let img = work.join("root.img");
    let _ = fs::remove_file(&img);
    fs::File::create(&img)?.set_len(2 << 30)?;
    let mut mkfs = cmd("mkfs.ext4", &["-q", "-F", "-L", "et-root", "-d"]);
    mkfs.arg(&dir).arg(&img);
    status(mkfs).context("making the VM's ext4 image")?;
    fs::remove_dir_all(&dir)?;
    Ok(img)
}

/// Whether KVM really runs `root`'s kernel: some machines (nested or restricted hypervisors)
/// open /dev/kvm but hang the guest in its real-mode setup code. Boots the kernel alone and
/// waits up to 10 s for its first message.
fn kvm_boots(root: &Root, work: &Path) -> anyhow::Result<bool> {
    let log = work.join("kvm-probe.log");
    let _ = fs::remove_file(&log);
    let mut qemu = cmd("qemu-system-x86_64", &["-machine", "q35,accel=kvm", "-cpu", "host"]);
    qemu.args(["-m", "256", "-nic", "none", "-display", "none", "-no-reboot", "-kernel"])
        .arg(&root.kernel)
        .args(["-append", "console=ttyS0 panic=-1", "-serial"])
        .arg(format!("file:{}", log.display()));
    let mut child = qemu.stdin(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let started = Instant::now();
    let mut booted = false;
    while started.elapsed() < Duration::from_secs(10) && !booted {
        std::thread::sleep(Duration::from_millis(250));
        booted = fs::read_to_string(&log).is_ok_and(|t| t.contains("Linux version"));
        if child.try_wait()?.is_some() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(booted)
}

/// How the VM runs: KVM, or emulated (TCG) and why.
fn accel(root: &Root, work: &Path) -> anyhow::Result<Result<(), String>> {
    if !super::qemu::kvm_works() {
        return Ok(Err("/dev/kvm cannot be opened".into()));
    }
    if !kvm_boots(root, work)? {
        return Ok(Err("/dev/kvm opens but a KVM guest prints nothing within 10 s (a nested \
                       or restricted hypervisor)"
            .into()));
    }
    Ok(Ok(()))
}

/// Boots `img` with `root`'s kernel; returns the results port's text once the VM is off.
fn boot(root: &Root, img: &Path, work: &Path, timeout: Duration) -> anyhow::Result<String> {
    let console = work.join("console.log");
    let results = work.join("results.log");
    let kvm = match accel(root, work)? {
        Ok(()) => true,
        Err(why) => {
            println!("vm-systemd: no KVM: {why}; emulating (TCG), several times slower");
            false
        }
    };
    let timeout = if kvm { timeout } else { timeout * 2 };
    let mut qemu = cmd("qemu-system-x86_64", &["-machine"]);
    qemu.arg(if kvm { "q35,accel=kvm" } else { "q35,accel=tcg" })
        .args(["-cpu", if kvm { "host" } else { "max" }, "-smp", "2", "-m", "1024"])
        .args(["-nic", "none", "-display", "none", "-no-reboot", "-kernel"])
        .arg(&root.kernel)
        .arg("-initrd")
        .arg(&root.initrd)
        .args(["-append", "console=ttyS0 root=/dev/vda rw panic=-1 quiet systemd.show_status=1"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", img.display()))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()));
    println!("$ {}", describe(&qemu));
    let mut child = qemu.stdin(Stdio::null()).spawn().context("starting qemu-system-x86_64")?;
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the VM did not power off within {timeout:?}; console tail:\n{}",
                tail(&console, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("vm-systemd: VM off after {:.0} s ({exit})", started.elapsed().as_secs_f64());
    anyhow::ensure!(
        exit.success(),
        "qemu exited with {exit}; console tail:\n{}",
        tail(&console, 40)
    );
    Ok(fs::read_to_string(&results).unwrap_or_default().replace('\r', ""))
}

/// The last `n` lines of a file, for messages.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default().replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The exposure score in `systemd-analyze security` output.
fn score(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains("Overall exposure level"))?;
    line.rsplit(": ").next()?.split_whitespace().next()?.parse().ok()
}

/// The score `systemd-analyze security --offline=true` gives the unit in deploy/ here, as the
/// suite's offline test (tracer-user/tests/offline/deploy_systemd.rs) computes it.
fn offline_score() -> anyhow::Result<f64> {
    let unit = workspace_root().join("deploy/systemd/egress-tracer.service");
    let mut c = cmd("systemd-analyze", &["security", "--offline=true", "--no-pager"]);
    let out = c.arg(&unit).output().context("systemd-analyze security --offline=true")?;
    score(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("no score from {}", describe(&c)))
}

/// Checks the driver's `results`: every check passed, the live score equals `offline`.
fn judge(results: &str, offline: f64) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for check in ["start", "counts", "reload", "counts-after-reload", "restart", "stop"] {
        if !results.lines().any(|l| l.starts_with(&format!("ET PASS {check}: "))) {
            failures.push(format!("{check} did not pass"));
        }
    }
    failures.extend(results.lines().filter(|l| l.starts_with("ET FAIL ")).map(str::to_owned));
    let live = results.lines().find_map(|l| l.strip_prefix("ET SCORE live ")).map(str::trim);
    match live.and_then(|l| l.parse::<f64>().ok()) {
        Some(live) if live == offline => {
            println!("vm-systemd: PASS security: live {live} = offline {offline}")
        }
        Some(live) => failures.push(format!("live exposure {live} != offline {offline}")),
        None => failures.push(format!("no live exposure score ({live:?})")),
    }
    if !results.lines().any(|l| l == "ET DONE pass") {
        failures.push("the driver did not finish with `ET DONE pass`".into());
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Builds (or reuses) the root, the image and boots it; `Skip` if the machine cannot.
fn check(deb: &Path, kernel: Kernel, rebuild: bool, timeout: Duration) -> anyhow::Result<Outcome> {
    if let Some(why) = missing() {
        println!("SKIPPED: {why}");
        return Ok(Outcome::Skip(why));
    }
    let sources = host_sources()?;
    if sources.is_empty() {
        let why = format!("no Debian {SUITE} entry in /etc/apt/sources.list(.d) for mmdebstrap");
        println!("SKIPPED: {why}");
        return Ok(Outcome::Skip(why));
    }
    let started = Instant::now();
    let root = match root(&sources, kernel, rebuild) {
        Ok(root) => root,
        Err(BuildError::Unreachable(why)) => {
            println!("SKIPPED: {why}");
            return Ok(Outcome::Skip(why));
        }
        Err(BuildError::Other(e)) => return Err(e),
    };
    let work = target_dir().join("vm-systemd");
    fs::create_dir_all(&work)?;
    let img = image(&root, deb, &work)?;
    println!("vm-systemd: image ready after {:.0} s", started.elapsed().as_secs_f64());
    let results = boot(&root, &img, &work, timeout)?;
    let _ = fs::remove_file(&img);
    let mut shown = String::new();
    for line in results.lines().filter(|l| l.starts_with("ET ")) {
        let _ = writeln!(shown, "vm-systemd: {}", &line[3..]);
    }
    print!("{shown}");
    let offline = offline_score()?;
    println!("vm-systemd: security: offline (host, deploy/systemd) {offline}");
    judge(&results, offline).with_context(|| {
        format!(
            "console: {}\n{}",
            work.join("console.log").display(),
            tail(&work.join("console.log"), 30)
        )
    })?;
    println!("vm-systemd: all checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(Outcome::Pass)
}

/// The `cargo xtask test` step: the .deb in `EGRESS_TRACER_DEB` (built by the dist step).
pub(crate) fn step(deb: &Path) -> anyhow::Result<Outcome> {
    println!("vm-systemd: booting bookworm's own kernel (6.1, netlink clsact)");
    check(deb, Kernel::Bookworm, false, Duration::from_secs(300))
}

/// Runs `cargo xtask vm-systemd`.
pub(crate) fn run(ready: &Ready, args: &VmSystemdArgs) -> anyhow::Result<()> {
    let deb = match &args.deb {
        Some(deb) => deb.clone(),
        None => {
            let bin = crate::dist::build(ready, crate::dist::HOST_MUSL)?;
            crate::deb::build(&bin, crate::dist::debian_arch(crate::dist::HOST_MUSL)?)?
        }
    };
    match check(&deb, args.kernel, args.rebuild, Duration::from_secs(args.timeout))? {
        Outcome::Skip(why) => anyhow::bail!("cannot run the systemd VM here: {why}"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_suite_from_deb822_and_one_line_sources() {
        let files = vec![
            (
                PathBuf::from("/etc/apt/sources.list.d/debian.sources"),
                "Types: deb\n# a comment\nURIs: http://deb.example/debian\n\
                 Suites: bookworm bookworm-updates\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/k.gpg\n\n\
                 Types: deb-src\nURIs: http://deb.example/debian\nSuites: bookworm\n\
                 Components: main\n\n\
                 Types: deb\nURIs: http://other.example/x\nSuites: nodistro\nComponents: main\n\n\
                 Types: deb\nEnabled: no\nURIs: http://deb.example/debian\nSuites: bookworm\n\
                 Components: main\n"
                    .to_owned(),
            ),
            (
                PathBuf::from("/etc/apt/sources.list"),
                "# deb http://x bookworm main\ndeb [arch=amd64] http://sec.example/ bookworm-security main contrib\n\
                 deb http://x bookwormish main\ndeb http://y trixie main\n"
                    .to_owned(),
            ),
        ];
        assert_eq!(
            suite_sources(&files, "bookworm"),
            [
                "deb [signed-by=/usr/share/keyrings/k.gpg] http://deb.example/debian bookworm main",
                "deb [signed-by=/usr/share/keyrings/k.gpg] http://deb.example/debian bookworm-updates main",
                "deb [arch=amd64] http://sec.example/ bookworm-security main contrib",
            ]
        );
    }

    #[test]
    fn the_key_follows_the_sources() {
        let a = root_key(&["deb http://a bookworm main".to_owned()], Kernel::Bookworm);
        assert_eq!(a, root_key(&["deb http://a bookworm main".to_owned()], Kernel::Bookworm));
        assert_ne!(a, root_key(&["deb http://b bookworm main".to_owned()], Kernel::Bookworm));
        assert!(a.starts_with("bookworm-"));
    }

    #[test]
    fn judges_the_driver_results() {
        let good = "ET PASS start: x\nET PASS counts: x\nET PASS reload: x\n\
                    ET PASS counts-after-reload: x\nET SCORE live 1.8\nET PASS restart: x\n\
                    ET PASS stop: x\nET DONE pass\n";
        judge(good, 1.8).unwrap();
        assert!(judge(good, 1.9).unwrap_err().to_string().contains("1.8 != offline 1.9"));
        let bad = good.replace("ET PASS restart: x", "ET FAIL restart: gone");
        let err = judge(&bad, 1.8).unwrap_err().to_string();
        assert!(err.contains("restart did not pass") && err.contains("ET FAIL restart: gone"));
        assert_eq!(
            score("→ Overall exposure level for egress-tracer.service: 1.8 OK :-)"),
            Some(1.8)
        );
    }
}
