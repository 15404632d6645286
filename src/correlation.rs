//! Pearson's correlation, shared by the key estimate (a passage's pitch classes against a key's
//! profile) and the report's Spearman correlation (Pearson's of ranks).

/// Pearson's correlation of two series of one length; `None` where it is undefined (fewer
/// than two points, or a side that does not vary).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sx = x.iter().map(|a| (a - mx).powi(2)).sum::<f64>().sqrt();
    let sy = y.iter().map(|b| (b - my).powi(2)).sum::<f64>().sqrt();
    (sx > 0.0 && sy > 0.0).then(|| cov / (sx * sy))
}

#[cfg(test)]
mod tests {
    use super::pearson;

    #[test]
    fn pearson_of_lines_and_of_nothing() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]).unwrap() - 0.99794).abs() < 1e-5);
        assert!((pearson(&[1.0, 2.0], &[3.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 2.0], &[5.0, 5.0]), None);
        assert_eq!(pearson(&[1.0], &[2.0]), None);
    }
}
