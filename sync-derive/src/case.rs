//! The `Column` variant SeaORM derives from a field name (`billing_info_id` → `BillingInfoId`).

/// Mirrors the upper-camel-case conversion SeaORM's `DeriveEntityModel` applies to field names:
/// words split at `_` and at lower-to-upper case changes, each capitalised.
pub(crate) fn upper_camel(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let mut out = String::with_capacity(field.len());
    for word in words(field) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    out
}

fn words(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for part in s.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<(usize, char)> = part.char_indices().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (index, c) = chars[i];
            let prev = chars[i - 1].1;
            let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase() && c.is_uppercase() && next_lower);
            if boundary {
                words.push(&part[start..index]);
                start = index;
            }
        }
        if start < part.len() {
            words.push(&part[start..]);
        }
    }
    words
}

/// The Levenshtein distance, for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_seaorm_variants() {
        assert_eq!(upper_camel("id"), "Id");
        assert_eq!(upper_camel("billing_info_id"), "BillingInfoId");
        assert_eq!(upper_camel("r#type"), "Type");
        assert_eq!(upper_camel("line_1"), "Line1");
        assert_eq!(upper_camel("userID"), "UserId");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("emial", "email"), 2);
        assert_eq!(distance("name", "name"), 0);
    }
}
