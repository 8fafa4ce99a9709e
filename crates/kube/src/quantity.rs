//! Kubernetes quantities (`128Mi`, `1G`, `500m`, `0.5`, `1e3`): the apimachinery
//! `resource.Quantity` serialization, as bytes for memory and as CPUs for cpu.

/// The value of a quantity as a number (`500m` → 0.5, `1Ki` → 1024).
pub fn value(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, mult) = suffixes
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .or_else(|| q.strip_suffix('P').map(|n| (n, 1e15)))
        .or_else(|| {
            q.strip_suffix('E')
                .filter(|n| !n.contains(['e', 'E']))
                .map(|n| (n, 1e18))
        })
        .unwrap_or((q, 1.0));
    let n: f64 = num.parse().ok()?;
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Bytes of a memory quantity.
pub fn bytes(q: &str) -> Option<u64> {
    value(q).map(|v| v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(value("500m"), Some(0.5));
        assert_eq!(value("2"), Some(2.0));
        assert_eq!(value("x"), None);
        assert_eq!(value("-1"), None);
    }
}
