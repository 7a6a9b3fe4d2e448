//! Pod addresses: each pod gets its own loopback address, so two pods can bind the same port.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so any address in the pod range
//! can be bound without configuring anything.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("{0:?} is not an IPv4 CIDR like 127.1.0.0/16")]
    BadCidr(String),
    #[error("pod CIDR {0} is not inside 127.0.0.0/8 (only loopback addresses need no setup)")]
    NotLoopback(String),
}

#[derive(Debug)]
pub struct IpPool {
    /// First and last usable address, as integers.
    first: u32,
    last: u32,
    /// Where the next search starts: addresses are handed out round-robin, so a freed address
    /// is not reused at once, while a peer may still hold connections to the old pod.
    cursor: u32,
    used: BTreeSet<u32>,
}

/// Never handed out: the node's own address, which other processes on the host bind.
const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

impl IpPool {
    pub fn new(cidr: &str) -> Result<Self, PoolError> {
        let bad = || PoolError::BadCidr(cidr.to_string());
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        if addr.octets()[0] != 127 {
            return Err(PoolError::NotLoopback(cidr.to_string()));
        }
        let mask = u32::MAX << (32 - prefix);
        let network = u32::from(addr) & mask;
        // The network and broadcast addresses are skipped, as on a real pod network.
        let first = network + 1;
        let last = (network | !mask) - 1;
        Ok(Self {
            first,
            last,
            cursor: first,
            used: BTreeSet::from([u32::from(HOST)]),
        })
    }

    /// The next free address, or None when the range is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let size = self.last - self.first + 1;
        for _ in 0..size {
            let candidate = self.cursor;
            self.cursor = if self.cursor == self.last {
                self.first
            } else {
                self.cursor + 1
            };
            if self.used.insert(candidate) {
                return Some(candidate.into());
            }
        }
        None
    }

    /// Takes a specific address (the one a pod already had before the agent restarted); false
    /// when it is outside the range or taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && self.used.insert(u32::from(ip))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if ip != HOST {
            self.used.remove(&u32::from(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert!(IpPool::new("127.1.0.0/16").is_ok());
        assert_eq!(
            IpPool::new("10.0.0.0/8").unwrap_err(),
            PoolError::NotLoopback("10.0.0.0/8".into())
        );
        for bad in ["127.1.0.0", "127.1.0.0/31", "127.1.0.0/x", "x/16"] {
            assert!(
                matches!(IpPool::new(bad), Err(PoolError::BadCidr(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn allocates_unique_addresses_round_robin_and_skips_the_host() {
        let mut pool = IpPool::new("127.0.0.0/29").unwrap();
        // 127.0.0.0 is the network, 127.0.0.1 the host, 127.0.0.7 the broadcast address.
        let got: Vec<Ipv4Addr> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        assert_eq!(got, want);
        pool.release(Ipv4Addr::new(127, 0, 0, 3));
        pool.release(Ipv4Addr::new(127, 0, 0, 5));
        // The cursor moves on from where it stopped rather than reusing the first hole.
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 0, 0, 5)));
        assert_eq!(pool.allocate(), None);
        pool.release(HOST);
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn reserve_keeps_an_address_across_restarts() {
        let mut pool = IpPool::new("127.1.0.0/16").unwrap();
        assert!(pool.reserve(Ipv4Addr::new(127, 1, 0, 1)));
        assert!(!pool.reserve(Ipv4Addr::new(127, 1, 0, 1)));
        assert!(!pool.reserve(Ipv4Addr::new(127, 2, 0, 1)));
        assert!(!pool.contains(Ipv4Addr::new(127, 2, 0, 1)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 1, 0, 2)));
    }
}
