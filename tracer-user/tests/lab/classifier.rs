//! The classifier programs fed crafted frames through `BPF_PROG_TEST_RUN`: exact counts for
//! every header shape, and malformed frames neither dropped nor miscounted.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::support::frames::{ARP, DOT1AD, DOT1Q, Frame, GATEWAY_MAC, IPV4, IPV6};
use aya::programs::{TestRun as _, TestRunOptions};
use tracer_common::{CounterKey, CounterValue, CountryId, Direction, Stat};
use tracer_user::{
    agent::database::KernelTables,
    geo::{self, CompiledGeo},
    kernel::{CounterReader, Kernel, LoadOptions, Lookup, programs},
};

const DEVICE: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const US_V4: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
const CN_V4: Ipv4Addr = Ipv4Addr::new(36, 110, 0, 1);
const UNKNOWN_V4: Ipv4Addr = Ipv4Addr::new(45, 0, 0, 1);
const LAN_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
const CN_V6: Ipv6Addr = Ipv6Addr::new(0x240e, 0, 0, 0, 0, 0, 0, 1);
const LAN_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x11);

fn id(code: &[u8; 2]) -> CountryId {
    CountryId::from_code(*code).expect("valid code")
}

/// A small database: two IPv4 countries, IPv6 countries at /20 and /32, and one range finer
/// than /64 (DE inside IE) so the IPv6 structure's deepest levels are exercised.
const TEST_DB: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,US
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,CN
2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,IE
2a00:1450:4001:80b::,2a00:1450:4001:80b::ff,DE
";

/// A kernel loaded with [`TEST_DB`] (tables, and the full LPM tries when `lookup` is `Lpm`).
fn kernel_with(lookup: Lookup) -> (Kernel, CounterReader) {
    support::require_root();
    let data = geo::parse_csv("test.csv", TEST_DB.as_bytes()).expect("parse");
    let geo = CompiledGeo::new(data, &[]).expect("compile");
    let tables = KernelTables::build(&geo, lookup);
    let options =
        LoadOptions { counter_entries: 64, geo: tables.sizes(), ..LoadOptions::default() };
    let mut kernel = Kernel::load(&options).expect("load");
    tables.fill(&mut kernel).expect("fill");
    kernel.set_lookup(lookup).expect("settings");
    let reader = kernel.counter_reader().expect("reader");
    (kernel, reader)
}

fn kernel() -> (Kernel, CounterReader) {
    kernel_with(Lookup::Table)
}

fn run(kernel: &Kernel, program: &'static str, frame: &Frame) {
    let prog = kernel.program(program).expect("program");
    let opts = TestRunOptions { data_in: Some(&frame.0), ..Default::default() };
    let result =
        prog.test_run(opts).unwrap_or_else(|e| panic!("test run of {} bytes: {e}", frame.len()));
    assert_eq!(result.return_value, 0, "{program} must return TC_ACT_OK for {frame:?}");
}

fn key(country: CountryId, direction: Direction) -> CounterKey {
    CounterKey { mac: DEVICE, country: country.0, direction: direction as u8, verdict: 0 }
}

fn upload_v4(dst: Ipv4Addr, ihl: u8) -> Frame {
    Frame::eth(GATEWAY_MAC, DEVICE).ethertype(IPV4).ipv4(LAN_V4, dst, ihl, 36)
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn counts_every_header_shape_exactly() {
    let (kernel, reader) = kernel();
    let frames = [
        upload_v4(US_V4, 5),
        upload_v4(US_V4, 15), // 40 bytes of options
        Frame::eth(GATEWAY_MAC, DEVICE).vlan(DOT1Q, 100).ethertype(IPV4).ipv4(LAN_V4, US_V4, 5, 10),
        Frame::eth(GATEWAY_MAC, DEVICE)
            .vlan(DOT1AD, 200)
            .vlan(DOT1Q, 100)
            .ethertype(IPV4)
            .ipv4(LAN_V4, US_V4, 5, 0),
    ];
    let us_bytes: usize = frames.iter().map(Frame::len).sum();
    for f in &frames {
        run(&kernel, programs::UPLOAD, f);
    }
    let cn = upload_v4(CN_V4, 5);
    run(&kernel, programs::UPLOAD, &cn);
    let unknown = upload_v4(UNKNOWN_V4, 5);
    run(&kernel, programs::UPLOAD, &unknown);
    let cn6 = Frame::eth(GATEWAY_MAC, DEVICE).ethertype(IPV6).ipv6(LAN_V6, CN_V6, 20);
    run(&kernel, programs::UPLOAD, &cn6);
    let down = Frame::eth(DEVICE, GATEWAY_MAC).ethertype(IPV4).ipv4(CN_V4, LAN_V4, 5, 100);
    run(&kernel, programs::DOWNLOAD, &down);
    let down6 = Frame::eth(DEVICE, GATEWAY_MAC).ethertype(IPV6).ipv6(CN_V6, LAN_V6, 7);
    run(&kernel, programs::DOWNLOAD, &down6);

    let snap = reader.snapshot().expect("snapshot");
    let cv = |packets: u64, bytes: usize| CounterValue { packets, bytes: bytes as u64 };
    let expected = [
        (key(id(b"US"), Direction::Upload), cv(4, us_bytes)),
        (key(id(b"CN"), Direction::Upload), cv(2, cn.len() + cn6.len())),
        (key(CountryId::UNKNOWN, Direction::Upload), cv(1, unknown.len())),
        (key(id(b"CN"), Direction::Download), cv(2, down.len() + down6.len())),
    ];
    assert_eq!(snap.counters, expected.into_iter().collect());
    for stat in Stat::ALL {
        for d in Direction::ALL {
            // One device sent egress traffic: its MAC is new once.
            let want =
                if (stat, d) == (Stat::NewMac, Direction::Upload) { cv(1, 0) } else { cv(0, 0) };
            assert_eq!(snap.stat(stat, d), want, "{stat:?} {d:?}");
        }
    }
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn local_and_non_ip_are_not_egress() {
    let (kernel, reader) = kernel();
    let local4 = upload_v4(Ipv4Addr::new(10, 77, 0, 1), 5);
    let local6 =
        Frame::eth(GATEWAY_MAC, DEVICE).ethertype(IPV6).ipv6(LAN_V6, "fd77::1".parse().unwrap(), 0);
    let arp = Frame::eth([0xff; 6], DEVICE).ethertype(ARP).raw(&[0u8; 28]);
    let triple = Frame::eth(GATEWAY_MAC, DEVICE)
        .vlan(DOT1AD, 1)
        .vlan(DOT1Q, 2)
        .vlan(DOT1Q, 3)
        .ethertype(IPV4)
        .ipv4(LAN_V4, US_V4, 5, 0);
    for f in [&local4, &local6, &arp, &triple] {
        run(&kernel, programs::UPLOAD, f);
    }
    let snap = reader.snapshot().expect("snapshot");
    assert!(snap.counters.is_empty(), "nothing is egress: {:?}", snap.counters);
    let up = Direction::Upload;
    assert_eq!(
        snap.stat(Stat::Local, up),
        CounterValue { packets: 2, bytes: (local4.len() + local6.len()) as u64 }
    );
    assert_eq!(
        snap.stat(Stat::Other, up),
        CounterValue { packets: 2, bytes: (arp.len() + triple.len()) as u64 }
    );
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn malformed_frames_pass_and_count_as_malformed() {
    let (kernel, reader) = kernel();
    let base = Frame::eth(GATEWAY_MAC, DEVICE);
    let frames = [
        // VLAN tag cut after the TPID.
        base.clone().vlan(DOT1Q, 100).truncate(16),
        // IPv4 header cut at 10 bytes (behind a VLAN tag: BPF_PROG_TEST_RUN itself refuses an
        // untagged IPv4 frame shorter than an IPv4 header).
        base.clone().vlan(DOT1Q, 7).ethertype(IPV4).ipv4(LAN_V4, US_V4, 5, 0).truncate(28),
        // IHL < 5.
        base.clone().ethertype(IPV4).ipv4(LAN_V4, US_V4, 5, 8).with_byte(14, 0x44),
        // IHL says 60 bytes of header, the frame has 20.
        base.clone().ethertype(IPV4).ipv4(LAN_V4, US_V4, 5, 0).with_byte(14, 0x4f),
        // Version 6 in an IPv4 EtherType.
        base.clone().ethertype(IPV4).ipv4(LAN_V4, US_V4, 5, 8).with_byte(14, 0x65),
        // IPv6 with a short header (tagged, as above).
        base.clone().vlan(DOT1Q, 7).ethertype(IPV6).ipv6(LAN_V6, CN_V6, 0).truncate(18 + 30),
        // A VLAN tag claiming IPv6 and nothing after it.
        base.clone().vlan(DOT1AD, 7).ethertype(IPV6),
        // QinQ with the inner tag cut short.
        base.clone().vlan(DOT1AD, 7).vlan(DOT1Q, 8).truncate(20),
    ];
    let bytes: usize = frames.iter().map(Frame::len).sum();
    for f in &frames {
        run(&kernel, programs::UPLOAD, f);
        run(&kernel, programs::DOWNLOAD, f);
    }
    let snap = reader.snapshot().expect("snapshot");
    assert!(snap.counters.is_empty(), "malformed frames were counted: {:?}", snap.counters);
    let expected = CounterValue { packets: frames.len() as u64, bytes: bytes as u64 };
    assert_eq!(snap.stat(Stat::Malformed, Direction::Upload), expected);
    assert_eq!(snap.stat(Stat::Malformed, Direction::Download), expected);
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn full_counter_map_overflows_into_the_overflow_counter() {
    let (kernel, reader) = kernel();
    // Capacity is 64 entries: 70 distinct devices to the same country.
    for i in 0..70u8 {
        let f = Frame::eth(GATEWAY_MAC, [0x02, 0, 0, 0, 1, i])
            .ethertype(IPV4)
            .ipv4(LAN_V4, US_V4, 5, 0);
        run(&kernel, programs::UPLOAD, &f);
    }
    let snap = reader.snapshot().expect("snapshot");
    let counted: u64 = snap.counters.values().map(|v| v.packets).sum();
    let overflow = snap.stat(Stat::Overflow, Direction::Upload).packets;
    assert_eq!(snap.counters.len(), 64);
    assert_eq!((counted, overflow), (64, 6), "every packet is counted exactly once");
}

fn upload_v6(dst: &str) -> Frame {
    Frame::eth(GATEWAY_MAC, DEVICE).ethertype(IPV6).ipv6(LAN_V6, dst.parse().unwrap(), 0)
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn tables_and_lpm_reference_agree() {
    let cases = [
        ("36.110.9.9", "CN"),
        ("8.8.8.8", "US"),
        ("8.8.9.1", "unknown"),
        ("240e:123::1", "CN"),
        ("2a00:1450:4001:80b::10", "DE"),
        ("2a00:1450:4001:80b::100", "IE"),
        ("2a00:1450:4001:80c::1", "IE"),
        ("2a00:1451::1", "unknown"),
    ];
    for lookup in [Lookup::Table, Lookup::Lpm] {
        let (kernel, reader) = kernel_with(lookup);
        for (i, (addr, _)) in cases.iter().enumerate() {
            let mac = [0x02, 0, 0, 0, 2, i as u8];
            let frame = match addr.parse().unwrap() {
                std::net::IpAddr::V4(a) => {
                    Frame::eth(GATEWAY_MAC, mac).ethertype(IPV4).ipv4(LAN_V4, a, 5, 0)
                }
                std::net::IpAddr::V6(_) => {
                    let mut f = upload_v6(addr);
                    f.0[6..12].copy_from_slice(&mac);
                    f
                }
            };
            run(&kernel, programs::UPLOAD, &frame);
        }
        let snap = reader.snapshot().expect("snapshot");
        for (i, (addr, expected)) in cases.iter().enumerate() {
            let (key, _) = snap
                .counters
                .iter()
                .find(|(k, _)| k.mac == [0x02, 0, 0, 0, 2, i as u8])
                .unwrap_or_else(|| panic!("{addr} was not counted ({lookup:?})"));
            let got = tracer_user::base::text::country_label(CountryId(key.country));
            assert_eq!(got, *expected, "{addr} with {lookup:?}");
        }
    }
}

/// The programs' aya-log diagnostics cost nothing when off: with `AYA_LOG_LEVEL` 0 (a frozen
/// global) the verifier proves every log statement unreachable and drops it, so the translated
/// programs are smaller than with the level at debug (and per-packet cost is that of a program
/// without logging).
#[test]
#[ignore = "needs root (loads eBPF programs): run by cargo xtask test"]
fn kernel_log_statements_are_dropped_when_the_level_is_off() {
    use tracer_user::kernel::{KernelLog, programs};
    support::require_root();
    let data = geo::parse_csv("test.csv", TEST_DB.as_bytes()).expect("parse");
    let geo = CompiledGeo::new(data, &[]).expect("compile");
    let tables = KernelTables::build(&geo, Lookup::Table);
    let size = |kernel_log| {
        let options = LoadOptions { geo: tables.sizes(), kernel_log, ..LoadOptions::default() };
        let kernel = Kernel::load(&options).expect("load");
        let info = kernel.program(programs::DOWNLOAD).expect("program").info().expect("info");
        info.size_translated().expect("translated size")
    };
    let (off, debug) = (size(KernelLog::Off), size(KernelLog::Debug));
    println!("tc_download translated: {off} bytes with the kernel log off, {debug} at debug");
    assert!(off < debug, "off {off} must be smaller than debug {debug}");
}
