//! The conservation equality of the remote view: for every device, live + expired + overflow
//! remotes sum exactly to its per-country counters.

use std::collections::BTreeMap;

use serde_json::Value;

use super::agent::Agent;

pub(crate) fn traffic(v: &Value) -> (u64, u64) {
    (v["packets"].as_u64().unwrap(), v["bytes"].as_u64().unwrap())
}

pub(crate) fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// Per device MAC: (upload, download, blocked) summed over its countries in the devices API.
pub(crate) fn country_totals(agent: &Agent) -> BTreeMap<String, [(u64, u64); 3]> {
    let report = agent.get_json("/api/v1/devices");
    let mut out = BTreeMap::new();
    for d in report["devices"].as_array().unwrap() {
        let mut t = [(0, 0); 3];
        for c in d["countries"].as_array().unwrap() {
            t[0] = add(t[0], traffic(&c["upload"]));
            t[1] = add(t[1], traffic(&c["download"]));
            t[2] = add(t[2], traffic(&c["blocked"]));
        }
        out.insert(d["mac"].as_str().unwrap().to_owned(), t);
    }
    out
}

/// The device's remotes answer (all of them).
pub(crate) fn remotes(agent: &Agent, mac: &str) -> Value {
    agent.remotes(mac)
}

/// Listed + unlisted live remotes + expired + overflow of one device, as (upload, download, blocked).
pub(crate) fn remote_totals(view: &Value) -> [(u64, u64); 3] {
    let mut t = [(0, 0); 3];
    let parts = view["remotes"].as_array().unwrap().iter().chain([
        &view["unlisted"],
        &view["expired"],
        &view["overflow"],
    ]);
    for r in parts {
        t[0] = add(t[0], traffic(&r["upload"]));
        t[1] = add(t[1], traffic(&r["download"]));
        t[2] = add(t[2], traffic(&r["blocked"]));
    }
    t
}

/// The conservation equality, for every device the agent reports.
pub(crate) fn assert_conserved(agent: &Agent, when: &str) {
    let totals = country_totals(agent);
    assert!(!totals.is_empty(), "{when}: no devices");
    for (mac, countries) in &totals {
        let view = remotes(agent, mac);
        assert_eq!(
            remote_totals(&view),
            *countries,
            "{when}: {mac}: live + expired + overflow remotes must equal the per-country \
             counters (upload, download, blocked)\n{view:#}"
        );
    }
}
