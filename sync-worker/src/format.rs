//! Formatting shared by the CLI and the dashboard.

/// A duration for people: `1h 2m`, `3m 4s`, `5s`, `120ms`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(120), "120ms");
        assert_eq!(age(5_000), "5s");
        assert_eq!(age(184_000), "3m 4s");
        assert_eq!(age(3_720_000), "1h 2m");
        assert_eq!(age(-5), "0ms");
    }
}
