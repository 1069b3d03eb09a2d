//! Dropping privileges once a live capture is open (as tcpdump's `-Z`): the packet socket and
//! the `-w` file stay open, nothing else needs root or CAP_NET_RAW afterwards. Running as root:
//! supplementary groups cleared, then the group and user switched (default `nobody`,
//! 65534:65534). Either way every capability is cleared and `no_new_privs` set, so the process
//! cannot regain them (a setuid binary run later gains nothing). What remains: the open capture
//! socket, the `-w` file, stdout/stderr, and read access to what the unprivileged user can read.

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivError {
    /// `-Z` names a user that is neither a number nor in /etc/passwd.
    #[error("unknown user {user:?} (give a name from /etc/passwd or uid[:gid])")]
    UnknownUser {
        /// The user as given.
        user: String,
    },
    /// A system call refused.
    #[error("{call}: {source}")]
    Syscall {
        /// Which call (`setgroups`, `setresgid`, `setresuid`, `capset`, `prctl(...)`).
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where privileges were dropped to, for the message on stderr.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// User and group now in effect.
    pub(crate) uid: u32,
    /// See `uid`.
    pub(crate) gid: u32,
}

/// `uid[:gid]`, or a user name looked up in `passwd` (the text of /etc/passwd, which static
/// builds read themselves: no NSS); `nobody` is 65534:65534 when the file lacks it.
pub(crate) fn resolve_user(user: &str, passwd: Option<&str>) -> Result<(u32, u32), PrivError> {
    if let Some((u, g)) = user.split_once(':') {
        if let (Ok(u), Ok(g)) = (u.parse(), g.parse()) {
            return Ok((u, g));
        }
    } else if let Ok(u) = user.parse::<u32>() {
        return Ok((u, u));
    }
    for line in passwd.unwrap_or("").lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == user {
            if let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse()) {
                return Ok((u, g));
            }
        }
    }
    if user == "nobody" {
        return Ok((65534, 65534));
    }
    Err(PrivError::UnknownUser { user: user.to_string() })
}

/// Linux capability header/data for capset(2), version 3 (two 32-bit words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops to `user` when running as root, clears every capability and sets `no_new_privs`.
pub(crate) fn drop_privileges(user: &str) -> Result<Dropped, PrivError> {
    let err = |call| PrivError::Syscall { call, source: std::io::Error::last_os_error() };
    // SAFETY: plain syscalls on this process with valid arguments.
    unsafe {
        if libc::geteuid() == 0 {
            let passwd = std::fs::read_to_string("/etc/passwd").ok();
            let (uid, gid) = resolve_user(user, passwd.as_deref())?;
            if libc::setgroups(0, std::ptr::null()) != 0 {
                return Err(err("setgroups"));
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                return Err(err("setresgid"));
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                return Err(err("setresuid"));
            }
        }
        let hdr = CapHeader { version: 0x2008_0522, pid: 0 };
        let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
        if libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) != 0 {
            return Err(err("capset"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(err("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        Ok(Dropped { uid: libc::getuid(), gid: libc::getgid() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_numbers_passwd_or_the_nobody_default() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nistio-proxy:x:1337:1337::/home:/bin/sh\n";
        assert_eq!(resolve_user("istio-proxy", Some(passwd)).ok(), Some((1337, 1337)));
        assert_eq!(resolve_user("1000:1001", None).ok(), Some((1000, 1001)));
        assert_eq!(resolve_user("4242", None).ok(), Some((4242, 4242)));
        assert_eq!(resolve_user("nobody", None).ok(), Some((65534, 65534)));
        let e = resolve_user("mallory", Some(passwd)).unwrap_err();
        assert!(matches!(&e, PrivError::UnknownUser { user } if user == "mallory"));
        assert_eq!(e.to_string(), r#"unknown user "mallory" (give a name from /etc/passwd or uid[:gid])"#);
    }
}
