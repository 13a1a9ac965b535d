//! The maps, sized by the agent before loading (see `tracer_common::maps`).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use tracer_common::{
    CounterValue, Ipv6LpmKey, Settings, Stat, TrafficKey, TrafficValue,
    capture::CAPTURES_BYTES,
    geo_dxr::{Node, RangeLine},
    geo_table::{Block, ROOT_BLOCKS},
    maps::{DEFAULT_COUNTER_ENTRIES, MACS_ENTRIES, PLACEHOLDER_GEO_ENTRIES},
    policy::{
        ALERTED_ENTRIES, AlertKey, EVENTS_BYTES, EventBudget, MAX_POLICY_DEVICES, MAX_PROFILES,
        PolicySettings, Profile,
    },
    remotes::{BenchSlot, RemoteSlot, SPILL_ENTRIES, SpillKey, SpillValue},
};

/// Per (device, country, verdict) packets and bytes in each direction. Allocated on demand:
/// kernel memory follows the pairs in use rather than the capacity (a router's household uses
/// a few hundred of 16,384), creating the map at load costs nothing (preallocated, it took 16
/// ms of the agent's start here), and a failed allocation is an overflow like a full map.
#[map]
pub(crate) static COUNTERS: PerCpuHashMap<TrafficKey, TrafficValue> =
    PerCpuHashMap::with_max_entries(DEFAULT_COUNTER_ENTRIES, BPF_F_NO_PREALLOC);

/// Per (device, remote address) traffic: each CPU's slots, open-addressed, then the agent's
/// header (`tracer_common::remotes`). Mappable: the agent reads the slots and retires them
/// through a shared mapping.
#[map]
pub(crate) static REMOTES: Array<RemoteSlot> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Per device: remote traffic that found no slot in [`REMOTES`], and what the agent retired.
#[map]
pub(crate) static REMOTE_SPILL: PerCpuHashMap<SpillKey, SpillValue> =
    PerCpuHashMap::with_max_entries(SPILL_ENTRIES, BPF_F_NO_PREALLOC);

/// The bench's flat table of remotes (`tracer_common::remotes::BENCH_SLOTS_MAP`): one slot
/// here, sized by the bench when it loads its programs.
#[map]
pub(crate) static BENCH_SLOTS: Array<BenchSlot> = Array::with_max_entries(1, 0);

/// Source MACs recently seen sending egress traffic (see `Stat::NewMac`).
#[map]
pub(crate) static MACS: LruHashMap<[u8; 6], u8> = LruHashMap::with_max_entries(MACS_ENTRIES, 0);

/// Traffic not counted per country, indexed by `Stat::index`.
#[map]
pub(crate) static STATS: PerCpuArray<CounterValue> =
    PerCpuArray::with_max_entries(Stat::ENTRIES, 0);

/// The root of the IPv4 compact structure (see `tracer_common::geo_dxr`). The six arrays of
/// the compact structures are mappable, so that the agent fills them with a copy.
#[map]
pub(crate) static GEO_V4_TABLE: Array<Block> = Array::with_max_entries(ROOT_BLOCKS, BPF_F_MMAPABLE);

/// The nodes of the IPv4 compact structure.
#[map]
pub(crate) static GEO_V4_NODES: Array<Node> =
    Array::with_max_entries(PLACEHOLDER_GEO_ENTRIES, BPF_F_MMAPABLE);

/// The range array of the IPv4 compact structure.
#[map]
pub(crate) static GEO_V4_RANGES: Array<RangeLine> =
    Array::with_max_entries(PLACEHOLDER_GEO_ENTRIES, BPF_F_MMAPABLE);

/// The IPv4 LPM trie: the reference the table is checked against.
#[map]
pub(crate) static GEO_V4_LPM: LpmTrie<u32, u16> =
    LpmTrie::with_max_entries(PLACEHOLDER_GEO_ENTRIES, 0);

/// The root of the IPv6 compact structure.
#[map]
pub(crate) static GEO_V6_TABLE: Array<Block> = Array::with_max_entries(ROOT_BLOCKS, BPF_F_MMAPABLE);

/// The nodes of the IPv6 compact structure.
#[map]
pub(crate) static GEO_V6_NODES: Array<Node> =
    Array::with_max_entries(PLACEHOLDER_GEO_ENTRIES, BPF_F_MMAPABLE);

/// The range array of the IPv6 compact structure.
#[map]
pub(crate) static GEO_V6_RANGES: Array<RangeLine> =
    Array::with_max_entries(PLACEHOLDER_GEO_ENTRIES, BPF_F_MMAPABLE);

/// The IPv6 LPM trie: the reference the compact structure is checked against.
#[map]
pub(crate) static GEO_V6_LPM: LpmTrie<Ipv6LpmKey, u16> =
    LpmTrie::with_max_entries(PLACEHOLDER_GEO_ENTRIES, 0);

/// Run-time settings written by the agent.
#[map]
pub(crate) static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Policy-wide settings written by the agent.
#[map]
pub(crate) static POLICY_SETTINGS: Array<PolicySettings> = Array::with_max_entries(1, 0);

/// The compiled policies; index 0 is the default.
#[map]
pub(crate) static PROFILES: Array<Profile> = Array::with_max_entries(MAX_PROFILES, 0);

/// Device MAC -> profile index, for devices that do not follow the default.
#[map]
pub(crate) static DEVICE_PROFILE: HashMap<[u8; 6], u32> =
    HashMap::with_max_entries(MAX_POLICY_DEVICES, 0);

/// Alert events for the agent.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// When each (device, remote address) last raised an event.
#[map]
pub(crate) static ALERTED: LruHashMap<AlertKey, u64> =
    LruHashMap::with_max_entries(ALERTED_ENTRIES, 0);

/// DNS answers and TLS segments for the agent.
#[map]
pub(crate) static CAPTURES: RingBuf = RingBuf::with_byte_size(CAPTURES_BYTES, 0);

/// Captures sent by this CPU in the current second.
#[map]
pub(crate) static CAPTURE_BUDGET: PerCpuArray<EventBudget> = PerCpuArray::with_max_entries(1, 0);

/// Events sent by this CPU in the current second.
#[map]
pub(crate) static EVENT_BUDGET: PerCpuArray<EventBudget> = PerCpuArray::with_max_entries(1, 0);
