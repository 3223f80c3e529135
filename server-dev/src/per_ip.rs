//! What one client address may take: `/ws` connections (a cap) and logins (a token bucket).
//!
//! The address is the TCP peer's, from axum's `ConnectInfo` (set by [`crate::serve`]);
//! forwarding headers are not trusted, since server-dev is reached directly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio::time::Instant;

use crate::rate::Bucket;

/// Most addresses the login limiter tracks at once (about 64 B each).
const MAX_LOGIN_IPS: usize = 65_536;

/// The address a limit counts by: IPv4 as is, IPv6 by its /64 (what one subscriber is
/// usually given, so a host cannot dodge the cap by changing its interface id), an
/// IPv4-mapped IPv6 address as the IPv4 address it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IpKey(IpAddr);

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let [a, b, c, d, ..] = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
                }
            },
        }
    }
}

/// The requesting client's address key; `None` when the router is served without
/// `ConnectInfo<SocketAddr>` (then no per-address limit applies).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpKey>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(addr.map(|ConnectInfo(addr)| IpKey::of(addr.ip()))))
    }
}

/// Live `/ws` connections per address; only addresses with at least one are kept, so the
/// table never outgrows the connection cap.
#[derive(Debug, Default)]
pub(crate) struct ConnCounts {
    by_ip: HashMap<IpKey, usize>,
}

impl ConnCounts {
    /// Whether `ip` has fewer than `cap` connections.
    pub(crate) fn below(&self, ip: IpKey, cap: usize) -> bool {
        self.by_ip.get(&ip).copied().unwrap_or(0) < cap
    }

    pub(crate) fn add(&mut self, ip: IpKey) {
        *self.by_ip.entry(ip).or_insert(0) += 1;
    }

    pub(crate) fn remove(&mut self, ip: IpKey) {
        if let Some(n) = self.by_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn count(&self, ip: IpKey) -> usize {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }
}

/// One login token bucket per address.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<IpKey, Bucket>,
}

impl LoginLimiter {
    pub(crate) fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes a login token for `ip`, or tells how long until the next one.
    pub(crate) fn check(&mut self, ip: IpKey, now: Instant) -> Result<(), Duration> {
        if self.per_sec.is_nan() || self.per_sec <= 0.0 {
            return Ok(());
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_LOGIN_IPS {
            // A refilled bucket is the same as none.
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            if self.buckets.len() >= MAX_LOGIN_IPS {
                // Refuse rather than grow: that many addresses all logging in at full rate
                // is an attack, and the table must stay bounded.
                return Err(Duration::from_secs(1));
            }
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets
            .entry(ip)
            .or_insert_with(|| Bucket::new(per_sec, burst, now))
            .take(now)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpKey {
        IpKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::of(a), IpKey::of(b));
        assert_ne!(IpKey::of(a), IpKey::of(other));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(IpKey::of(mapped), v4(7));
    }

    #[test]
    fn counts_forget_an_address_with_no_connection() {
        let mut counts = ConnCounts::default();
        counts.add(v4(1));
        counts.add(v4(1));
        assert!(!counts.below(v4(1), 2) && counts.below(v4(2), 2));
        counts.remove(v4(1));
        assert_eq!(counts.count(v4(1)), 1);
        counts.remove(v4(1));
        counts.remove(v4(1));
        assert!(counts.by_ip.is_empty());
    }

    #[test]
    fn logins_are_limited_per_address_and_the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut limiter = LoginLimiter::new(5.0, 2.0);
        assert!(limiter.check(v4(1), t0).is_ok() && limiter.check(v4(1), t0).is_ok());
        assert_eq!(limiter.check(v4(1), t0), Err(Duration::from_millis(200)));
        assert!(
            limiter.check(v4(2), t0).is_ok(),
            "another address has its own bucket"
        );
        assert!(
            limiter
                .check(v4(1), t0 + Duration::from_millis(200))
                .is_ok()
        );

        let mut full = LoginLimiter::new(1.0, 1.0);
        let keys = (0..MAX_LOGIN_IPS as u32).map(|n| IpKey(IpAddr::V4(Ipv4Addr::from(n))));
        for key in keys {
            assert!(full.check(key, t0).is_ok());
        }
        assert_eq!(full.tracked(), MAX_LOGIN_IPS);
        assert!(
            full.check(v4(1), t0).is_err(),
            "full of empty buckets: refused"
        );
        // Once they refill they are forgotten, and a new address gets in.
        assert!(full.check(v4(1), t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(full.tracked(), 1);
        assert!(LoginLimiter::new(0.0, 1.0).check(v4(1), t0).is_ok());
    }
}
