//! The web page in a real headless Chromium (Debian's package) against the agent in the lab:
//! it loads without console errors, shows the lab's devices and countries, and a screenshot is
//! taken (`target/web-page.png`); driven over the DevTools protocol at a phone's and a desktop's
//! size, the world map shades the lab's countries, a click on a country lists the devices and
//! remotes behind it, selecting a device shows only its countries, and the history chart draws
//! the last hour (screenshots `target/web-page-{phone,desktop}.png`).
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{net::TcpListener, path::Path, process::Command};

use crate::support::agent::{Agent, LISTEN};

const LAB_DB: &str = "\
36.110.0.0,36.110.255.255,CN
193.0.0.0,193.0.7.255,NL
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US
";

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(support::cdp::CHROMIUM_FLAGS)
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium (cargo xtask setup installs Debian's package)")
}

/// A lab whose agent allows `eu` and `US` (CN is unapproved), its page forwarded to a local
/// port for the browser, warmed up: the lab, the agent and the page's URL.
fn page_lab(tag: &str) -> (tracer_lab::Lab, Agent, String) {
    let lab = support::lab(tag);
    let agent = Agent::start_with(&lab, LAB_DB, &["--allow", "eu,US"]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    tracer_lab::forward(&format!("127.0.0.1:{port}"), &lab.netns_path(&lab.gateway()), LISTEN)
        .unwrap();
    lab.warm_up().unwrap();
    (lab, agent, format!("http://127.0.0.1:{port}/"))
}

#[test]
#[ignore = "needs root, network namespaces and chromium: run by cargo xtask test"]
fn the_page_shows_devices_and_countries_without_console_errors() {
    // CN is unapproved: the page must flag it and list the alert.
    let (lab, agent, url) = page_lab("ew");
    let [d1, d2, ..] = lab.devices() else { panic!("devices") };
    // d1 resolves its CN remote through the gateway's dnsmasq: the page names it.
    let _dns = lab
        .dnsmasq(&lab.gateway(), &["10.77.0.1"], &["--host-record=api.io.mi.com,36.110.0.1"])
        .expect("dnsmasq");
    let answer = lab.exec(&d1.netns, &["dig", "+short", "@10.77.0.1", "api.io.mi.com"]).unwrap();
    assert_eq!(answer.trim(), "36.110.0.1");
    lab.ping(d1, "36.110.0.1", 3).unwrap();
    lab.ping(d2, "193.0.0.1", 2).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 2).unwrap();

    let profile = std::env::temp_dir().join(format!("et-chromium-{}", std::process::id()));
    let out = chromium(&["--dump-dom", &url], &profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    for mac in [&d1.mac, &d2.mac] {
        assert!(
            dom.contains(&format!("data-mac=\"{mac}\"")),
            "device {mac} not on the page:\n{dom}"
        );
    }
    for country in ["CN China", "NL Netherlands", "US United States"] {
        assert!(dom.contains(country), "{country} not on the page:\n{dom}");
    }
    assert!(dom.contains("<span id=\"error\"></span>"), "the page reports an error:\n{dom}");
    assert!(
        dom.contains("data-policy=\"alert\"") && dom.contains("UNAPPROVED"),
        "CN traffic is not marked unapproved:\n{dom}"
    );
    assert!(dom.contains("data-alert=\"1\""), "the alert is not listed:\n{dom}");
    // Each device lists its remotes: d1's CN address with its exact traffic, marked.
    let row = dom
        .split("<tr ")
        .find(|r| r.contains("data-remote=\"36.110.0.1\""))
        .unwrap_or_else(|| panic!("no remote row for 36.110.0.1:\n{dom}"));
    assert!(row.contains("class=\"unapproved\"") && row.contains("UNAPPROVED"), "{row}");
    assert!(row.contains("294 B (3 pkts)"), "3 pings of 98 bytes up and down: {row}");
    assert!(row.contains("api.io.mi.com"), "the remote's name from the DNS answer: {row}");
    let alert_row = dom
        .split("<tr ")
        .find(|r| r.contains("data-alert=\"1\""))
        .unwrap_or_else(|| panic!("no alert row:\n{dom}"));
    assert!(
        alert_row.contains("api.io.mi.com 36.110.0.1"),
        "the alert names the remote: {alert_row}"
    );
    assert!(dom.contains("data-remote=\"2001:4860:4860::8888\""), "d2's IPv6 remote:\n{dom}");
    assert_eq!(dom.matches("data-policy=\"alert\"").count(), 1, "only d1's CN row:\n{dom}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        !console.iter().any(|l| l.contains("Uncaught") || l.to_lowercase().contains("error")),
        "console errors: {console:#?}"
    );

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-page.png");
    let out = chromium(
        &["--window-size=1200,900", &format!("--screenshot={}", shot.display()), &url],
        &profile,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    let _ = std::fs::remove_dir_all(&profile);
    drop(agent);
}

/// Phone (390x844, mobile layout) and desktop (1280x900) views of the map, the drill-down and
/// the history, with real DOM events.
#[test]
#[ignore = "needs root, network namespaces and chromium: run by cargo xtask test"]
fn the_map_drills_down_on_a_phone_and_a_desktop() {
    use std::time::Duration;
    let (lab, agent, url) = page_lab("wm");
    let [d1, d2, ..] = lab.devices() else { panic!("devices") };
    lab.ping(d1, "36.110.0.1", 3).unwrap();
    lab.ping(d2, "193.0.0.1", 2).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 2).unwrap();
    // The history records every 10 s: wait for one record after the traffic.
    std::thread::sleep(Duration::from_secs(11));
    let history = agent.get_json("/api/v1/history?range=24h");
    let total: u64 = history["total"]["upload_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        3 * 98 + 2 * 98 + 2 * 118,
        "the history holds exactly the pings: {history:#}"
    );

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    for (name, width, height, mobile) in [("phone", 390, 844, true), ("desktop", 1280, 900, false)]
    {
        let mut b = support::cdp::Browser::start();
        b.viewport(width, height, mobile);
        b.navigate(&url);
        let shaded = "(() => { const p = (c) => document.querySelector(`#map path[data-country=\"${c}\"]`); \
            return !!p('CN') && ['CN','NL','US'].every((c) => p(c).classList.contains('has-traffic')) \
            && !p('DE').classList.contains('has-traffic') && p('CN').classList.contains('unapproved'); })()";
        b.wait_for(shaded, Duration::from_secs(10), "the map shades CN (unapproved), NL and US");
        let first = b.eval("window.firstShadeMs").as_f64().unwrap();
        eprintln!("{name}: map shaded {first:.0} ms after the navigation started");
        assert!(first < 1000.0, "{name}: the map took {first} ms to show the traffic");
        let shapes = b.eval("document.querySelectorAll('#map path[data-country]').length");
        assert!(shapes.as_u64().unwrap() >= 170, "{name}: {shapes} country shapes");
        let tip =
            b.eval("document.querySelector('#map path[data-country=\"CN\"] title').textContent");
        let tip = tip.as_str().unwrap();
        assert!(
            tip.contains("CN China") && tip.contains("294 B") && tip.contains("unapproved for 1"),
            "{tip}"
        );
        // The map fits the screen: no horizontal scrolling on a phone.
        let overflow = b.eval("document.documentElement.scrollWidth <= window.innerWidth");
        assert_eq!(overflow, serde_json::Value::Bool(true), "{name}: the page scrolls sideways");

        // A click on China lists the device and the remote behind it.
        b.eval("document.querySelector('#map path[data-country=\"CN\"]').dispatchEvent(new MouseEvent('click', { bubbles: true }))");
        let panel = format!(
            "!document.getElementById('country-panel').hidden \
             && !!document.querySelector('[data-country-device=\"{}\"]') \
             && !!document.querySelector('[data-country-remote=\"36.110.0.1\"]') \
             && !document.querySelector('[data-country-device=\"{}\"]')",
            d1.mac, d2.mac
        );
        b.wait_for(&panel, Duration::from_secs(5), "the CN panel lists d1 and 36.110.0.1, not d2");
        assert_eq!(b.eval("location.hash").as_str().unwrap(), "#country=CN");
        // The screenshot shows the map with China's panel open.
        b.screenshot(&target.join(format!("web-page-{name}.png")));

        // Selecting d2 shows only its countries: NL and US shaded, CN not.
        let select = format!(
            "(() => {{ const s = document.getElementById('device'); s.value = '{}'; \
              s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value; }})()",
            d2.mac
        );
        assert_eq!(b.eval(&select).as_str().unwrap(), d2.mac);
        let only_d2 = "(() => { const p = (c) => document.querySelector(`#map path[data-country=\"${c}\"]`); \
            return !p('CN').classList.contains('has-traffic') && p('NL').classList.contains('has-traffic') \
            && p('US').classList.contains('has-traffic') && !document.getElementById('device-view').hidden; })()";
        b.wait_for(only_d2, Duration::from_secs(5), "d2 alone: NL and US, not CN");
        let devices = b.eval("document.querySelectorAll('#devices [data-mac]').length");
        assert_eq!(devices.as_u64(), Some(1), "{name}: only the selected device is listed");

        // The history chart: the last hour, stacked by country, for d2 now.
        b.wait_for(
            "document.querySelectorAll('#history rect[data-series=\"NL\"]').length > 0 \
             && document.querySelectorAll('#history rect[data-series=\"CN\"]').length === 0",
            Duration::from_secs(5),
            "d2's history bars (NL, no CN)",
        );
        b.eval("document.getElementById('clear').click()");
        b.wait_for(
            "document.querySelectorAll('#history rect[data-series=\"CN\"]').length > 0",
            Duration::from_secs(5),
            "the whole network's history has CN again",
        );
        assert!(b.errors.is_empty(), "{name}: console errors: {:#?}", b.errors);
    }
    drop(agent);
}
