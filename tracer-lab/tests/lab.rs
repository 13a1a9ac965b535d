//! The lab itself: every device reaches every remote, and nothing is left behind.

use tracer_lab::{Lab, REMOTES};

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn every_device_reaches_every_remote_and_cleanup_is_complete() {
    let prefix = format!("tl{}", std::process::id() % 100_000);
    {
        let lab = Lab::create(&prefix).expect("create lab");
        lab.warm_up().expect("warm up");
        for device in lab.devices() {
            for remote in REMOTES {
                lab.ping(device, remote.addr, 1).expect("ping");
            }
        }
    }
    let out = tracer_lab::run(&["ip", "netns", "list"]).expect("ip netns list");
    assert!(!out.contains(&format!("{prefix}-")), "namespaces left behind:\n{out}");
}
