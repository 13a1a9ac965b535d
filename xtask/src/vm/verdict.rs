//! Reading the guest's `ETVM ...` console lines (see init.sh) and checking them: exact packet
//! and byte counts per device, country and direction, the blocked packets, the alerts.

use std::collections::BTreeMap;

use serde_json::Value;

const D1: &str = "02:00:00:00:00:01";
const D2: &str = "02:00:00:00:00:02";
/// Ethernet + IPv4 + ICMP header + 56 bytes of ping payload.
const PING4: f64 = 98.0;
/// Ethernet + IPv6 + ICMPv6 header + 56 bytes of ping payload.
const PING6: f64 = 118.0;

/// What init.sh's pings must have produced: (mac, country, packets each way, frame size).
const EXPECTED: &[(&str, &str, f64, f64)] =
    &[(D1, "NL", 3.0, PING4), (D1, "US", 5.0, PING4), (D2, "US", 2.0, PING6)];
/// Echo requests to CN dropped in the kernel (`--block CN`), all from d2.
const BLOCKED_CN: f64 = 4.0;

/// Per (mac, country, direction): (packets, bytes).
type Counts = BTreeMap<(String, String, String), (f64, f64)>;

/// What one VM run reported.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// `uname -r` in the guest.
    pub(crate) release: String,
    /// `uname -m` in the guest.
    pub(crate) machine: String,
    /// How the agent attached to br-lan (`Netlink`, `Tcx`), from its `attached` log line.
    pub(crate) attach_mode: Option<String>,
    /// Exit status of `egress-tracer check`.
    pub(crate) check_status: Option<i32>,
    /// `egress-tracer check`'s report.
    pub(crate) check: Vec<String>,
    /// `egress_tracer_packets_total` / `bytes_total`.
    pub(crate) counts: Counts,
    /// `egress_tracer_blocked_packets_total` per (mac, country).
    pub(crate) blocked: BTreeMap<(String, String), f64>,
    /// `GET /api/v1/alerts`'s list.
    pub(crate) alerts: Vec<Value>,
    /// What the guest said went wrong (`ETVM FAIL ...`).
    pub(crate) failure: Option<String>,
    /// The agent's first `error:` line, with the verifier's last words if it has them.
    pub(crate) agent_error: Option<String>,
    /// The guest's `ETVM END` status.
    pub(crate) end: Option<i32>,
}

/// Parses the console lines.
pub(crate) fn parse(lines: &[String]) -> Report {
    let mut r = Report::default();
    for line in lines {
        let Some(rest) = line.strip_prefix("ETVM ") else { continue };
        let (what, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match what {
            "uname" => r.release = value.to_owned(),
            "machine" => r.machine = value.to_owned(),
            "check-status" => r.check_status = value.trim().parse().ok(),
            "check" => r.check.push(value.to_owned()),
            "FAIL" => r.failure = Some(value.to_owned()),
            "END" => r.end = value.trim().parse().ok(),
            "alerts" => {
                r.alerts = serde_json::from_str::<Value>(value)
                    .ok()
                    .and_then(|v| v["alerts"].as_array().cloned())
                    .unwrap_or_default();
            }
            "agent" => {
                let plain = strip_ansi(value);
                if plain.contains(" attached") {
                    r.attach_mode = field(&plain, "mode");
                }
                if r.agent_error.is_none() && plain.contains("error:") {
                    let short: String = plain.chars().take(160).collect();
                    r.agent_error = Some(short);
                } else if plain.contains("BPF program is too large")
                    && let Some(e) = &mut r.agent_error
                    && !e.contains("too large")
                {
                    e.push_str(" ... ");
                    e.push_str(plain.trim());
                }
            }
            "metric" => metric(&mut r, value),
            _ => {}
        }
    }
    r
}

fn metric(r: &mut Report, line: &str) {
    let Some((name, labels, value)) = sample(line) else { return };
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    match name.as_str() {
        "egress_tracer_packets_total" => {
            r.counts.entry((get("mac"), get("country"), get("direction"))).or_default().0 = value;
        }
        "egress_tracer_bytes_total" => {
            r.counts.entry((get("mac"), get("country"), get("direction"))).or_default().1 = value;
        }
        "egress_tracer_blocked_packets_total" => {
            r.blocked.insert((get("mac"), get("country")), value);
        }
        _ => {}
    }
}

/// `name{k="v",...} value` -> (name, labels, value).
fn sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = head.split_once('{') else {
        return Some((head.to_owned(), BTreeMap::new(), value));
    };
    let mut map = BTreeMap::new();
    let mut rest = labels.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut val = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => val.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        map.insert(key.trim_start_matches(',').to_owned(), val);
        rest = &after[end..];
    }
    Some((name.to_owned(), map, value))
}

/// `key=value` in a log line (value up to the next space).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("{key}=");
    line.split_whitespace().find_map(|w| w.strip_prefix(pat.as_str())).map(str::to_owned)
}

/// The text without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every way the report differs from what the guest's lab must produce; empty: PASS.
pub(crate) fn problems(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(failure) = &r.failure {
        match &r.agent_error {
            Some(e) => out.push(format!("the guest failed: {failure}: {e}")),
            None => out.push(format!("the guest failed: {failure}")),
        }
    }
    if r.end != Some(0) {
        out.push(format!("the guest ended with {:?}", r.end));
    }
    if r.check_status != Some(0) {
        out.push(format!("`egress-tracer check` exited {:?}", r.check_status));
    }
    if r.attach_mode.is_none() {
        out.push("the agent logged no `attached ... mode=` line".into());
    }
    let mut want = Counts::new();
    for (mac, country, packets, frame) in EXPECTED {
        for direction in ["download", "upload"] {
            let key = ((*mac).to_owned(), (*country).to_owned(), direction.to_owned());
            want.insert(key, (*packets, packets * frame));
        }
    }
    if r.counts != want {
        out.push(format!("counts {:?}, expected {want:?}", r.counts));
    }
    let blocked: BTreeMap<_, _> = r.blocked.iter().filter(|(_, v)| **v != 0.0).collect();
    let want_blocked = ((D2.to_owned(), "CN".to_owned()), BLOCKED_CN);
    if blocked.len() != 1 || blocked.get(&want_blocked.0) != Some(&&want_blocked.1) {
        out.push(format!("blocked {blocked:?}, expected {{{want_blocked:?}}}"));
    }
    let alerts: Vec<(String, String, String)> = r
        .alerts
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (s(&a["device"]["mac"]), s(&a["country"]), s(&a["action"]))
        })
        .collect();
    let want_alerts = [
        (D1.to_owned(), "NL".to_owned(), "alert".to_owned()),
        (D2.to_owned(), "CN".to_owned(), "block".to_owned()),
    ];
    let mut sorted = alerts.clone();
    sorted.sort();
    if sorted != want_alerts {
        out.push(format!("alerts {alerts:?}, expected exactly {want_alerts:?}"));
    }
    out
}

/// One line of the counts for the summary: `d1 US 5/5 NL 3/3, d2 US 2/2 (IPv6), blocked CN 4`.
pub(crate) fn summary(r: &Report) -> String {
    let c = |mac: &str, country: &str| {
        let get = |d: &str| {
            r.counts.get(&(mac.to_owned(), country.to_owned(), d.to_owned())).map_or(0.0, |v| v.0)
        };
        format!("{}/{}", get("upload"), get("download"))
    };
    let blocked = r.blocked.get(&(D2.to_owned(), "CN".to_owned())).copied().unwrap_or(0.0);
    format!(
        "packets up/down: d1 US {} NL {}, d2 US(v6) {}; blocked d2 CN {blocked}; alerts {}",
        c(D1, "US"),
        c(D1, "NL"),
        c(D2, "US"),
        r.alerts.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_lines() -> Vec<String> {
        let mut lines = vec![
            "noise".to_owned(),
            "ETVM uname 6.1.0-57-amd64".into(),
            "ETVM check-status 0".into(),
            "ETVM agent \u{1b}[32m INFO\u{1b}[0m egress_tracer::agent: attached \
             \u{1b}[3minterface\u{1b}[0m\u{1b}[2m=\u{1b}[0mbr-lan mode=Netlink"
                .into(),
        ];
        for (mac, country, packets, frame) in EXPECTED {
            for dir in ["upload", "download"] {
                let labels = format!(r#"{{mac="{mac}",country="{country}",direction="{dir}"}}"#);
                lines.push(format!("ETVM metric egress_tracer_packets_total{labels} {packets}"));
                lines.push(format!(
                    "ETVM metric egress_tracer_bytes_total{labels} {}",
                    packets * frame
                ));
            }
        }
        lines.push(format!(
            r#"ETVM metric egress_tracer_blocked_packets_total{{mac="{D2}",country="CN"}} 4"#
        ));
        lines.push(format!(
            r#"ETVM alerts {{"alerts":[{{"device":{{"mac":"{D1}"}},"country":"NL","action":"alert"}},{{"device":{{"mac":"{D2}"}},"country":"CN","action":"block"}}]}}"#
        ));
        lines.push("ETVM END 0".into());
        lines
    }

    #[test]
    fn a_good_run_passes_and_a_wrong_count_fails() {
        let r = parse(&good_lines());
        assert_eq!(r.release, "6.1.0-57-amd64");
        assert_eq!(r.attach_mode.as_deref(), Some("Netlink"));
        assert_eq!(problems(&r), Vec::<String>::new());
        assert!(summary(&r).contains("d1 US 5/5"), "{}", summary(&r));

        let mut lines = good_lines();
        lines.push(format!(
            r#"ETVM metric egress_tracer_packets_total{{mac="{D1}",country="CN",direction="upload"}} 1"#
        ));
        assert_eq!(problems(&parse(&lines)).len(), 1);
        let lines: Vec<String> =
            good_lines().into_iter().filter(|l| !l.contains("blocked")).collect();
        assert_eq!(problems(&parse(&lines)).len(), 1);
    }

    #[test]
    fn the_agent_s_error_is_in_the_first_problem() {
        let lines: Vec<String> = [
            "ETVM FAIL the agent exited",
            "ETVM agent egress-tracer: error: loading program tc_upload failed: E2BIG",
            "ETVM agent 12: (85) call pc-3",
            "ETVM agent BPF program is too large. Processed 1000001 insn",
            "ETVM END 1",
        ]
        .map(str::to_owned)
        .into();
        let first = problems(&parse(&lines)).remove(0);
        assert!(first.contains("tc_upload failed: E2BIG ... BPF program is too large"), "{first}");
    }

    #[test]
    fn samples_with_escaped_labels() {
        let (name, labels, value) = sample(r#"m{a="x\"y",b="z,w"} 12.5"#).expect("a sample");
        assert_eq!((name.as_str(), value), ("m", 12.5));
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "z,w");
    }
}
