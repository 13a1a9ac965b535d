//! Metrics details in the lab: the cap on (device, country) series.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use crate::support::{
    LAB_DB,
    agent::{Agent, counts},
};

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn pairs_over_the_series_cap_fold_into_other() {
    let lab = support::lab("mc");
    lab.warm_up().expect("warm up");
    let agent = Agent::start_with(&lab, LAB_DB, &["--metrics-max-pairs", "2"]);
    let [d1, d2, ..] = lab.devices() else { panic!("four devices") };
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    agent.scrape();
    lab.ping(d1, "8.8.8.8", 2).unwrap();
    agent.scrape();
    lab.ping(d2, "193.0.0.1", 3).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 4).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, &d1.mac, "CN", "upload"), (1.0, 98.0));
    assert_eq!(counts(&samples, &d1.mac, "US", "upload"), (2.0, 2.0 * 98.0));
    assert_eq!(counts(&samples, &d2.mac, "NL", "upload"), (0.0, 0.0), "over the cap");
    assert_eq!(
        counts(&samples, &d2.mac, "other", "upload"),
        (7.0, 3.0 * 98.0 + 4.0 * 118.0),
        "d2's NL and US summed"
    );
    // The choice sticks: d1's pairs keep their own series, d2's new traffic stays in other.
    lab.ping(d1, "193.0.0.1", 1).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, &d1.mac, "other", "upload"), (1.0, 98.0));
    assert_eq!(counts(&samples, &d1.mac, "CN", "upload"), (1.0, 98.0));
}
