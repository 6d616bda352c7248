//! What clients may hold at once: connection slots and request-body bytes, in total and per
//! peer address, so that no single address can take all of either (issue 11, findings 2 and 3).
//!
//! Every grant is a guard that gives its share back when dropped, so nothing here needs to be
//! told when a connection or a request ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What each peer address holds, counted against its share.
pub(crate) struct PeerShares {
    /// Connections one address may have open at once.
    pub(crate) max_connections: usize,
    /// Body KiB one address may have admitted at once.
    pub(crate) max_body_kib: usize,
    held: Mutex<HashMap<IpAddr, Held>>,
}

#[derive(Default)]
struct Held {
    connections: usize,
    body_kib: usize,
}

impl PeerShares {
    /// `share` of each total (0 < share ≤ 1), at least one connection and one maximal body.
    pub(crate) fn new(share: f64, total_connections: usize, total_body_kib: usize, max_body_kib: usize) -> Arc<Self> {
        let part = |total: usize| ((total as f64 * share).ceil() as usize).clamp(1, total.max(1));
        Arc::new(PeerShares {
            max_connections: part(total_connections),
            max_body_kib: part(total_body_kib).max(max_body_kib),
            held: Mutex::new(HashMap::new()),
        })
    }

    fn update<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Held) -> T) -> T {
        // A poisoned lock means a panic between two integer updates: the counts are still whole.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = held.entry(ip).or_default();
        let out = f(entry);
        if entry.connections == 0 && entry.body_kib == 0 {
            held.remove(&ip);
        }
        out
    }

    /// One more connection for `ip`, unless it holds its share already.
    pub(crate) fn connection(self: &Arc<Self>, ip: IpAddr) -> Option<PeerConnection> {
        let max = self.max_connections;
        let granted = self.update(ip, |h| {
            let ok = h.connections < max;
            if ok {
                h.connections += 1;
            }
            ok
        });
        granted.then(|| PeerConnection { shares: self.clone(), ip })
    }

    fn body(self: &Arc<Self>, ip: IpAddr, kib: usize) -> Option<PeerBody> {
        let max = self.max_body_kib;
        let granted = self.update(ip, |h| {
            let ok = h.body_kib + kib <= max;
            if ok {
                h.body_kib += kib;
            }
            ok
        });
        granted.then(|| PeerBody { shares: self.clone(), ip, kib })
    }

    /// Addresses holding anything (for tests).
    #[cfg(test)]
    fn peers(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A connection counted against its peer's share.
pub(crate) struct PeerConnection {
    shares: Arc<PeerShares>,
    ip: IpAddr,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        self.shares.update(self.ip, |h| h.connections = h.connections.saturating_sub(1));
    }
}

struct PeerBody {
    shares: Arc<PeerShares>,
    ip: IpAddr,
    kib: usize,
}

impl Drop for PeerBody {
    fn drop(&mut self) {
        let kib = self.kib;
        self.shares.update(self.ip, |h| h.body_kib = h.body_kib.saturating_sub(kib));
    }
}

/// The budget of request body bytes in flight, counted in KiB permits, in total and per peer.
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    pub(crate) max_body_bytes: usize,
    peers: Arc<PeerShares>,
}

/// Why a body was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server holds as many bodies as it accepts.
    Total,
    /// This peer address holds its share.
    Peer,
}

/// An admitted body's bytes; given back when dropped (after the answer is ready).
pub(crate) struct BodyPermit {
    _total: OwnedSemaphorePermit,
    _peer: Option<PeerBody>,
}

impl BodyBudget {
    pub(crate) fn new(total_bytes: usize, max_body_bytes: usize, peers: Arc<PeerShares>) -> Self {
        BodyBudget { permits: Arc::new(Semaphore::new(kib(total_bytes))), max_body_bytes, peers }
    }

    /// Admits `bytes` of body from `peer` (unknown peers only count against the total).
    pub(crate) fn admit(&self, peer: Option<IpAddr>, bytes: usize) -> Result<BodyPermit, Refused> {
        let kib = kib(bytes);
        let peer = match peer {
            Some(ip) => Some(self.peers.body(ip, kib).ok_or(Refused::Peer)?),
            None => None,
        };
        let permits = u32::try_from(kib).unwrap_or(u32::MAX);
        let total = self.permits.clone().try_acquire_many_owned(permits).map_err(|_| Refused::Total)?;
        Ok(BodyPermit { _total: total, _peer: peer })
    }
}

pub(crate) fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn one_address_gets_at_most_its_share_and_gives_it_back() {
        let peers = PeerShares::new(0.5, 10, 64 * 1024, 1024);
        assert_eq!((peers.max_connections, peers.max_body_kib), (5, 32 * 1024));
        let held: Vec<_> = (0..5).map(|_| peers.connection(A).unwrap()).collect();
        assert!(peers.connection(A).is_none(), "a sixth connection from one address");
        assert!(peers.connection(B).is_some(), "another address is not affected");
        drop(held);
        assert!(peers.connection(A).is_some());
        assert_eq!(peers.peers(), 0, "nothing is kept for addresses that hold nothing");
    }

    #[test]
    fn bodies_count_against_the_peer_and_the_total() {
        let peers = PeerShares::new(0.5, 10, 8 * 1024, 1024);
        let budget = BodyBudget::new(8 * 1024 * 1024, 1024 * 1024, peers.clone());
        let a: Vec<_> = (0..4).map(|_| budget.admit(Some(A), 1024 * 1024).unwrap()).collect();
        assert_eq!(budget.admit(Some(A), 1).err(), Some(Refused::Peer));
        let b: Vec<_> = (0..4).map(|_| budget.admit(Some(B), 1024 * 1024).unwrap()).collect();
        assert_eq!(budget.admit(None, 1).err(), Some(Refused::Total));
        drop((a, b));
        assert!(budget.admit(Some(A), 1024 * 1024).is_ok());
        assert_eq!(peers.peers(), 0);
    }

    #[test]
    fn a_share_is_never_smaller_than_one_maximal_body() {
        let peers = PeerShares::new(0.01, 100, 1024, 1024);
        assert_eq!((peers.max_connections, peers.max_body_kib), (1, 1024));
    }
}
