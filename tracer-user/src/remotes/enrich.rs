//! What the agent knows about a device and a remote beyond a kernel event or counter: the
//! interface the alerts, the learner, the flow export and the reports ask it through.

use std::net::IpAddr;

use tracer_common::{CounterValue, CountryId};

use crate::{devices::DeviceInfo, policy::Decision};

/// What the agent knows beyond the event: the device, the policy, the counters.
pub trait Enricher: Send + Sync {
    /// The device as the cached lease and neighbour data know it (reports, metrics).
    fn device(&self, mac: [u8; 6]) -> DeviceInfo;
    /// The device, asking the kernel for its addresses if the cache has none (alerts: a device
    /// often alerts before the next refresh has seen it).
    fn device_now(&self, mac: [u8; 6]) -> DeviceInfo;
    /// The policy's decision and rule for (device, country).
    fn decide(&self, mac: [u8; 6], country: CountryId) -> Decision;
    /// Packets and bytes the device has exchanged with the country so far.
    fn so_far(&self, mac: [u8; 6], country: CountryId) -> CounterValue;
    /// The autonomous system of a remote address, if an ASN database knows it.
    fn asn(&self, address: IpAddr) -> Option<super::AsnInfo>;
    /// The names `mac` used for `address` (DNS, TLS), if the agent learned any.
    fn names(&self, mac: [u8; 6], address: IpAddr) -> Option<super::domains::Names>;
    /// Learning mode: since when `country` is new for `mac` (RFC 3339), until approved.
    fn new_since(&self, _mac: [u8; 6], _country: CountryId) -> Option<String> {
        None
    }
}

/// A boxed [`Enricher`], shared by the reader and the API.
pub type Enrichment = std::sync::Arc<dyn Enricher>;
