//! Thread capabilities: the canonical set and the accepted aliases. The default sets per
//! thread type (contract section 3.2) are assigned by the SQL API that creates threads.

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

/// Maps a list of names and aliases to the canonical set, in canonical order, without
/// duplicates. An unknown (or missing) name is returned as the error.
pub fn canonical_set<'a>(
    names: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Vec<&'static str>, String> {
    let mut seen = [false; CANONICAL.len()];
    for name in names {
        let c = name
            .and_then(canonical)
            .ok_or_else(|| name.unwrap_or("NULL").chars().take(64).collect::<String>())?;
        if let Some(i) = CANONICAL.iter().position(|x| *x == c) {
            seen[i] = true;
        }
    }
    Ok(CANONICAL
        .iter()
        .zip(seen)
        .filter(|(_, s)| *s)
        .map(|(c, _)| *c)
        .collect())
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
    fn canonical_set_orders_dedupes_and_rejects() {
        let got = canonical_set(["manage", "speak", "observe", "read"].map(Some)).unwrap();
        assert_eq!(got, ["read", "send", "manage"]);
        assert_eq!(canonical_set([]).unwrap(), [] as [&str; 0]);
        assert_eq!(
            canonical_set([Some("read"), Some("admin")]),
            Err("admin".to_string())
        );
        assert_eq!(canonical_set([None]), Err("NULL".to_string()));
    }
}
