//! Rate limits: one token bucket per partner key (in `keys`), one per client address for the
//! unauthenticated complaint endpoint (here).

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota};
use patroli_runtime::http::client_ip;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub struct PerIpLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trust_forwarded_for: bool,
}

impl PerIpLimiter {
    pub fn new(per_minute: u32, burst: u32, trust_forwarded_for: bool) -> Option<Arc<Self>> {
        let quota =
            Quota::per_minute(NonZeroU32::new(per_minute)?).allow_burst(NonZeroU32::new(burst)?);
        Some(Arc::new(PerIpLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            trust_forwarded_for,
        }))
    }

    /// `Err(wait)` when this client has used its allowance.
    pub fn check(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Duration> {
        let ip = client_ip(headers, peer, self.trust_forwarded_for);
        self.limiter.check_key(&ip).map_err(retry_after)
    }

    /// Forgets idle clients, so a scan from many addresses cannot grow memory without bound.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

pub fn retry_after(not_until: NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit_counts_each_address_and_trusts_only_the_last_forwarded_hop() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        let limiter = PerIpLimiter::new(1, 2, true).unwrap();
        assert!(limiter.check(peer, &headers).is_ok());
        assert!(limiter.check(peer, &headers).is_ok());
        let wait = limiter.check(peer, &headers).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        // Another client behind the same ingress has its own allowance.
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.8".parse().unwrap());
        assert!(limiter.check(peer, &headers).is_ok());

        let direct = PerIpLimiter::new(1, 1, false).unwrap();
        assert!(direct.check(peer, &headers).is_ok());
        headers.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert!(direct.check(peer, &headers).is_err(), "header ignored");
    }
}
