//! Thread capabilities: the canonical set, the accepted aliases, and the contract's defaults.

/// Canonical capability names, in display order.
pub const CANONICAL: [&str; 4] = ["read", "send", "run", "manage"];

/// Maps a capability name or alias to its canonical name.
pub fn canonical(name: &str) -> Option<&'static str> {
    Some(match name {
        "read" | "observe" => "read",
        "send" | "speak" => "send",
        "run" => "run",
        "manage" | "manage_thread" | "manage_participants" => "manage",
        _ => return None,
    })
}

/// Thread types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadType {
    Public,
    Workspace,
    Private,
}

/// Participant roles that decide default capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seat {
    Creator,
    OtherUser,
    Agent,
}

/// Default capabilities per thread type and seat (contract section 3.2).
pub fn defaults(thread: ThreadType, seat: Seat) -> &'static [&'static str] {
    match (thread, seat) {
        (_, Seat::Creator) => &["read", "send", "manage"],
        (ThreadType::Public, Seat::OtherUser) | (ThreadType::Private, Seat::OtherUser) => {
            &["read", "send"]
        }
        (ThreadType::Workspace, Seat::OtherUser) => &[],
        (ThreadType::Public, Seat::Agent) | (ThreadType::Workspace, Seat::Agent) => {
            &["read", "send", "run"]
        }
        (ThreadType::Private, Seat::Agent) => &["read", "send"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_to_canonical_names() {
        assert_eq!(canonical("observe"), Some("read"));
        assert_eq!(canonical("speak"), Some("send"));
        assert_eq!(canonical("manage_thread"), Some("manage"));
        assert_eq!(canonical("manage_participants"), Some("manage"));
        for c in CANONICAL {
            assert_eq!(canonical(c), Some(c));
        }
        assert_eq!(canonical("admin"), None);
        assert_eq!(canonical("READ"), None);
    }

    #[test]
    fn defaults_follow_the_contract_table() {
        assert_eq!(defaults(ThreadType::Private, Seat::Agent), ["read", "send"]);
        assert_eq!(
            defaults(ThreadType::Workspace, Seat::OtherUser),
            [] as [&str; 0]
        );
        assert_eq!(
            defaults(ThreadType::Public, Seat::Agent),
            ["read", "send", "run"]
        );
        assert_eq!(
            defaults(ThreadType::Public, Seat::Creator),
            ["read", "send", "manage"]
        );
    }
}
