//! `{"cidr": "10.0.0.0/24"}`: string values that are IP addresses inside a network.

use std::net::IpAddr;

use super::error::PatternErrorKind;

/// A network, IPv4 or IPv6, with its host bits cleared.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl Cidr {
    pub(super) fn parse(text: &str) -> Result<Self, PatternErrorKind> {
        let (address, prefix) = text.split_once('/').ok_or(PatternErrorKind::InvalidCidr)?;
        let address: IpAddr = address.parse().map_err(|_| PatternErrorKind::InvalidCidr)?;
        // Digits only: `u8::from_str` would also take a leading '+'.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PatternErrorKind::InvalidCidr);
        }
        let prefix: u32 = prefix.parse().map_err(|_| PatternErrorKind::InvalidCidr)?;
        match address {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                Ok(Self::V4 {
                    network: u32::from(v4) & mask,
                    mask,
                })
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                Ok(Self::V6 {
                    network: u128::from(v6) & mask,
                    mask,
                })
            }
            _ => Err(PatternErrorKind::InvalidCidr),
        }
    }

    pub(super) fn contains(&self, value: &str) -> bool {
        match (self, value.parse::<IpAddr>()) {
            (Self::V4 { network, mask }, Ok(IpAddr::V4(v4))) => u32::from(v4) & mask == *network,
            (Self::V6 { network, mask }, Ok(IpAddr::V6(v6))) => u128::from(v6) & mask == *network,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(cidr: &str, value: &str) -> bool {
        Cidr::parse(cidr).expect("valid").contains(value)
    }

    #[test]
    fn addresses_inside_the_network_match() {
        assert!(contains("10.0.0.0/24", "10.0.0.0"));
        assert!(contains("10.0.0.0/24", "10.0.0.255"));
        assert!(!contains("10.0.0.0/24", "10.0.1.0"));
        assert!(contains("10.0.0.7/24", "10.0.0.9"), "host bits are ignored");
        assert!(contains("0.0.0.0/0", "192.168.1.1"));
        assert!(contains("192.168.1.1/32", "192.168.1.1"));
        assert!(!contains("192.168.1.1/32", "192.168.1.2"));
        assert!(contains("2001:db8::/32", "2001:db8:1::1"));
        assert!(!contains("2001:db8::/32", "2001:db9::1"));
        assert!(contains("::/0", "::1"));
    }

    #[test]
    fn other_families_and_non_addresses_do_not_match() {
        assert!(!contains("0.0.0.0/0", "::1"));
        assert!(!contains("::/0", "127.0.0.1"));
        assert!(!contains("10.0.0.0/8", "10.0.0.0.1"));
        assert!(!contains("10.0.0.0/8", "ten"));
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "::/129",
            "x/8",
        ] {
            assert_eq!(
                Cidr::parse(bad),
                Err(PatternErrorKind::InvalidCidr),
                "{bad}"
            );
        }
    }
}
