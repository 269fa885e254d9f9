//! How fast sign-in attempts are answered: token buckets per client address and per typed user
//! name, a device cookie that exempts a reviewer's own browser from the per-user bucket, and the
//! keyed hash that stands in for a typed user name in logs.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hmac::{Hmac, Mac};
use patroli_runtime::http::client_ip;
use sha2::Sha256;

use crate::config::SignInLimits;

/// The cookie a browser gets when it signs in; see [`Throttle::device_cookie`].
pub const DEVICE_COOKIE: &str = "patroli_device";
/// How long a browser stays known (the secret is per process: a restart forgets them all).
pub const DEVICE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an attempt is not even checked; the label of `patroli_dashboard_sign_ins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Address,
    User,
}

impl Limited {
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Address => "address_limited",
            Self::User => "user_limited",
        }
    }
}

pub struct Throttle {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed by a hash of the typed name, not the name: any name is limited (so 429 does not
    /// tell which names exist) and the map holds no typed text (people type passwords there).
    per_user: DefaultKeyedRateLimiter<[u8; 32]>,
    trust_forwarded_for: bool,
    secret: [u8; 32],
}

impl Throttle {
    pub fn new(limits: &SignInLimits, trust_forwarded_for: bool) -> Self {
        let quota = |burst: u32, refill_secs: u64| {
            // validate() keeps both at least 1; fall back to the tightest quota rather than panic.
            Quota::with_period(Duration::from_secs(refill_secs.max(1)))
                .expect("a period of at least a second")
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Throttle {
            per_address: DefaultKeyedRateLimiter::keyed(quota(
                limits.address_burst,
                limits.address_refill_secs,
            )),
            per_user: DefaultKeyedRateLimiter::keyed(quota(
                limits.user_burst,
                limits.user_refill_secs,
            )),
            trust_forwarded_for,
            secret: rand::random(),
        }
    }

    /// Takes one attempt from the address's bucket and, unless `known_device`, from the user's;
    /// `Err` says which was empty and how long until it holds an attempt again.
    pub fn admit(
        &self,
        address: IpAddr,
        user: &str,
        known_device: bool,
    ) -> Result<(), (Limited, Duration)> {
        let wait = |not_until: governor::NotUntil<_>| {
            not_until.wait_time_from(DefaultClock::default().now())
        };
        self.per_address
            .check_key(&address)
            .map_err(|n| (Limited::Address, wait(n)))?;
        if !known_device {
            self.per_user
                .check_key(&self.mac(b"user", user))
                .map_err(|n| (Limited::User, wait(n)))?;
        }
        Ok(())
    }

    /// Forgets buckets that are full again, so names and addresses seen once do not stay.
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
    }

    /// The client ([`client_ip`]), with IPv6 clients counted per /64.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        per_subscriber(client_ip(headers, peer, self.trust_forwarded_for))
    }

    /// The device cookie's value for `user`: proof that this browser signed in as `user`.
    pub fn device_cookie(&self, user: &str) -> String {
        hex::encode(self.mac(b"device", user))
    }

    /// Whether `value` is `user`'s device cookie (compared in constant time).
    pub fn is_device_of(&self, value: &str, user: &str) -> bool {
        let Ok(sent) = hex::decode(value) else {
            return false;
        };
        self.hmac(b"device", user).verify_slice(&sent).is_ok()
    }

    /// What logs show instead of a typed user name: the same name gives the same tag in this
    /// process (attempts can be told apart), but the tag reveals nothing of what was typed.
    pub fn tag(&self, typed: &str) -> String {
        hex::encode(&self.mac(b"log", typed)[..8])
    }

    fn mac(&self, purpose: &[u8], text: &str) -> [u8; 32] {
        self.hmac(purpose, text).finalize().into_bytes().into()
    }

    fn hmac(&self, purpose: &[u8], text: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(text.as_bytes());
        mac
    }
}

/// An IPv6 address reduced to its /64: one subscriber usually gets a whole /64 and could
/// otherwise count as 2^64 clients. IPv4 (also IPv4-mapped IPv6) stays as it is.
fn per_subscriber(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
        v4 => v4,
    }
}

/// Whole seconds to put in `Retry-After`, rounded up and at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(address_burst: u32, user_burst: u32) -> SignInLimits {
        SignInLimits {
            address_burst,
            address_refill_secs: 3600,
            user_burst,
            user_refill_secs: 3600,
            max_password_checks: 1,
        }
    }

    #[test]
    fn the_address_bucket_empties_first_then_the_users_and_a_known_device_skips_the_users() {
        let throttle = Throttle::new(&limits(2, 3), false);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(throttle.admit(a, "rina", false).is_ok());
        assert!(throttle.admit(a, "rina", false).is_ok());
        let (limited, wait) = throttle.admit(a, "rina", false).unwrap_err();
        assert_eq!(limited, Limited::Address);
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        // Another address has its own bucket; rina's own has one attempt left.
        assert!(throttle.admit(b, "rina", false).is_ok());
        assert_eq!(
            throttle.admit(b, "rina", false).unwrap_err().0,
            Limited::User
        );
        // Any typed name has a bucket, known or not; rina's browser skips hers.
        assert!(
            throttle.admit(b, "nobody", false).is_err(),
            "b is spent now"
        );
        let c = "192.0.2.3".parse().unwrap();
        assert!(throttle.admit(c, "rina", true).is_ok());
    }

    #[test]
    fn a_device_cookie_is_good_for_its_user_only() {
        let throttle = Throttle::new(&limits(1, 1), false);
        let cookie = throttle.device_cookie("rina");
        assert_eq!(cookie.len(), 64);
        assert!(throttle.is_device_of(&cookie, "rina"));
        assert!(!throttle.is_device_of(&cookie, "vino"));
        assert!(!throttle.is_device_of("zz", "rina"));
        assert!(!throttle.is_device_of(&cookie[..62], "rina"));
        let other = Throttle::new(&limits(1, 1), false);
        assert!(
            !other.is_device_of(&cookie, "rina"),
            "another process's secret"
        );
    }

    #[test]
    fn the_client_is_the_peer_unless_the_ingress_is_trusted_and_ipv6_counts_per_64() {
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        let direct = Throttle::new(&limits(1, 1), false);
        assert_eq!(
            direct.client(peer, &headers),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        let behind = Throttle::new(&limits(1, 1), true);
        assert_eq!(
            behind.client(peer, &headers),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(
            behind.client(peer, &headers),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(
            behind.client(peer, &headers),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            direct.client(mapped, &HeaderMap::new()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn log_tags_are_stable_within_a_process_and_hide_the_name() {
        let throttle = Throttle::new(&limits(1, 1), false);
        let tag = throttle.tag("hunter2-typed-in-the-user-box");
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, throttle.tag("hunter2-typed-in-the-user-box"));
        assert_ne!(tag, throttle.tag("rina"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
    }
}
