//! The policy the programs enforce per packet, and the alert events they emit.
//!
//! The agent compiles its configuration into *profiles*: one action per country id, for every
//! distinct policy in use. [`DEVICE_PROFILE_MAP`] says which profile a device (MAC) follows;
//! devices not in it follow profile 0, the default. A packet whose action is not
//! [`Action::Allow`] raises an [`AlertEvent`] on the ring buffer the first time its device talks
//! to that remote address (again after [`PolicySettings::rearm_secs`]), at most
//! [`PolicySettings::events_per_sec`] events per second per CPU; a packet whose action is
//! [`Action::Block`] is dropped and counted with [`crate::maps::verdict::BLOCKED`].

/// Array with one [`PolicySettings`] entry (pinned).
pub const POLICY_SETTINGS_MAP: &str = "POLICY_SETTINGS";
/// Array of [`Profile`] (pinned).
pub const PROFILES_MAP: &str = "PROFILES";
/// Hash: MAC (`[u8; 6]`) -> index into [`PROFILES_MAP`] (pinned).
pub const DEVICE_PROFILE_MAP: &str = "DEVICE_PROFILE";
/// Ring buffer of [`AlertEvent`] (pinned, so a reload or restart keeps reading the same one).
pub const EVENTS_MAP: &str = "EVENTS";
/// LRU hash: [`AlertKey`] -> `u64` time (ns, `bpf_ktime_get_ns`) of the last event (pinned).
pub const ALERTED_MAP: &str = "ALERTED";
/// Per-CPU array with one [`EventBudget`]: the events sent this second (pinned).
pub const EVENT_BUDGET_MAP: &str = "EVENT_BUDGET";

/// Number of profiles [`PROFILES_MAP`] holds.
pub const MAX_PROFILES: u32 = 256;
/// Number of devices [`DEVICE_PROFILE_MAP`] holds.
pub const MAX_POLICY_DEVICES: u32 = 4096;
/// Remote addresses [`ALERTED_MAP`] remembers (least recently used ones are forgotten).
pub const ALERTED_ENTRIES: u32 = 16_384;
/// Size of [`EVENTS_MAP`] in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 256 * 1024;
/// Entries of a [`Profile`]: every country id below the table pointers.
pub const PROFILE_ENTRIES: usize = 1024;

/// What the policy says about a packet.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Action {
    /// Approved: counted, nothing else.
    #[default]
    Allow = 0,
    /// Not approved: counted, and an alert is raised.
    Alert = 1,
    /// Not approved and dropped in the kernel; an alert says so.
    Block = 2,
}

impl Action {
    /// The action stored as `raw` in a profile (anything unknown allows).
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            1 => Self::Alert,
            2 => Self::Block,
            _ => Self::Allow,
        }
    }

    /// The name used in configuration, logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Alert => "alert",
            Self::Block => "block",
        }
    }
}

/// One compiled policy: the [`Action`] (as `u8`) for every country id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    /// Indexed by country id; [`crate::CountryId::LOCAL`] is never consulted.
    pub actions: [u8; PROFILE_ENTRIES],
}

impl Default for Profile {
    fn default() -> Self {
        Self { actions: [Action::Allow as u8; PROFILE_ENTRIES] }
    }
}

/// Policy-wide settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicySettings {
    /// Non-zero when any profile has a non-allow action; zero skips the policy entirely.
    pub enabled: u32,
    /// Alert events each CPU may send per second; the rest are counted as suppressed.
    pub events_per_sec: u32,
    /// Seconds before the same (device, remote address) raises another event.
    pub rearm_secs: u32,
    /// Entries in [`DEVICE_PROFILE_MAP`]; zero lets the programs skip that lookup.
    pub devices: u32,
    /// Non-zero: send a [`NEW_PAIR`] event whenever a (device, country) counter entry is
    /// created (learning mode), within the same per-CPU budget as alerts.
    pub new_pairs: u32,
}

/// [`AlertEvent::action`] of an event that says a (device, country) counter entry was just
/// created: the device's first packet to that country (not a policy decision).
pub const NEW_PAIR: u8 = 0x80;

/// Key of [`ALERTED_MAP`]: a device and a remote address.
// 8-aligned (which adds no padding): the programs then store the address as two words. At
// byte alignment the BPF backend stores it a byte at a time, through sixteen stack slots.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlertKey {
    /// The device.
    pub mac: [u8; 6],
    /// 4 or 6.
    pub family: u8,
    /// Zero.
    pub reserved: u8,
    /// The remote address (IPv4 in the first four bytes, the rest zero).
    pub addr: [u8; 16],
}

/// The per-CPU event budget of the current one-second window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBudget {
    /// Start of the window (ns, `bpf_ktime_get_ns`).
    pub window_start: u64,
    /// Events sent in the window.
    pub sent: u64,
}

/// A device reached a remote address its policy does not approve.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertEvent {
    /// When (ns since boot, `bpf_ktime_get_ns`).
    pub time_ns: u64,
    /// The remote address (IPv4 in the first four bytes).
    pub addr: [u8; 16],
    /// The device.
    pub mac: [u8; 6],
    /// [`crate::CountryId`] of the remote address.
    pub country: u16,
    /// The remote TCP/UDP/SCTP port (zero for other protocols and fragments).
    pub port: u16,
    /// [`crate::Direction`] as a byte.
    pub direction: u8,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number (IPv4 protocol or the IPv6 next header).
    pub protocol: u8,
    /// [`Action`] as a byte.
    pub action: u8,
    /// Length of the packet in bytes (truncated to 65535).
    pub len: u16,
}

const _: () = assert!(core::mem::size_of::<Profile>() == PROFILE_ENTRIES);
const _: () = assert!(core::mem::size_of::<PolicySettings>() == 20);
const _: () = assert!(core::mem::size_of::<AlertKey>() == 24);
const _: () = assert!(core::mem::size_of::<EventBudget>() == 16);
const _: () = assert!(core::mem::size_of::<AlertEvent>() == 40);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]` structs of integers and byte arrays without implicit padding
    // (asserted above).
    unsafe impl aya::Pod for super::Profile {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PolicySettings {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AlertKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EventBudget {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AlertEvent {}
}
