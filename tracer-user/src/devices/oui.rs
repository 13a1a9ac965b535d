//! Vendors from the MAC's OUI, from the IEEE registries (MA-L, MA-M, MA-S, CID, IAB) embedded
//! by the `oui-data` crate.

use serde::Serialize;

/// Who made a device, as far as its MAC says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// The organisation the IEEE assigned the address block to.
    Known(&'static str),
    /// A locally administered address (bit 1 of the first octet): randomised by phones and
    /// laptops for privacy, or set by software; it names no vendor.
    LocallyAdministered,
    /// Not in the registries.
    Unknown,
}

impl Vendor {
    /// The vendor of `mac`.
    pub fn of(mac: [u8; 6]) -> Self {
        if mac[0] & 0x02 != 0 {
            return Self::LocallyAdministered;
        }
        let hex: String = mac.iter().map(|b| format!("{b:02X}")).collect();
        oui_data::lookup(&hex).map_or(Self::Unknown, |r| Self::Known(r.organization()))
    }

    /// The text shown: the organisation, `locally administered`, or nothing.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::Known(name) => Some(name),
            Self::LocallyAdministered => Some("locally administered"),
            Self::Unknown => None,
        }
    }
}

impl Serialize for Vendor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.label().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_and_randomised_macs() {
        assert_eq!(Vendor::of([0x50, 0xa6, 0xd8, 1, 2, 3]), Vendor::Known("Apple, Inc."));
        assert_eq!(
            Vendor::of([0xb8, 0x27, 0xeb, 1, 2, 3]).label(),
            Some("Raspberry Pi Foundation")
        );
        assert_eq!(Vendor::of([0x02, 0, 0, 0, 0, 1]), Vendor::LocallyAdministered);
        assert_eq!(Vendor::of([0xda, 0xa1, 0x19, 1, 2, 3]).label(), Some("locally administered"));
    }
}
