//! The connection cap's default, from the open-file limit.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit where the
//! system allows (a process may raise its own soft limit up to the hard
//! one). Every caller being served may hold an upstream connection too, and
//! the store, the admin API, logs and pooled connections need descriptors,
//! so the default cap is half of what is left after a reserve: with the
//! common 1024 soft limit not raised, 480; with 65536, 32 736.

/// Descriptors kept out of the cap for everything but callers' connections.
const RESERVE: u64 = 64;
/// Used when the limit cannot be read.
const FALLBACK_CAP: usize = 480;

/// The open-file limit after raising the soft limit to the hard one (as far
/// as allowed); `None` if it cannot be read.
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::debug!(
                "cannot raise the open-file limit from {} to {}",
                lim.rlim_cur,
                lim.rlim_max
            );
        }
    }
    Some(lim.rlim_cur as u64)
}

/// The cap for an open-file limit of `nofile`.
pub fn cap_for(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(RESERVE) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(1)
}

/// The connection cap: `configured`, or derived from the (raised) open-file
/// limit.
pub fn connection_cap(configured: Option<usize>) -> usize {
    let nofile = raise_nofile();
    match configured {
        Some(n) => n,
        None => nofile.map_or(FALLBACK_CAP, cap_for),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_upstream_connections() {
        assert_eq!(cap_for(1024), 480);
        assert_eq!(cap_for(65536), 32736);
        assert_eq!(cap_for(10), 1);
        assert_eq!(
            cap_for(u64::MAX),
            usize::try_from((u64::MAX - 64) / 2).unwrap()
        );
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_nofile().expect("readable");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(now, lim.rlim_cur as u64);
        assert_eq!(lim.rlim_cur, lim.rlim_max, "raised to the hard limit");
    }
}
