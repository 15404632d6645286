//! Correlations: Pearson's, for the key estimate (a passage's pitch classes against a key's
//! profile), and Spearman's rank correlation (Pearson's of ranks), for the report's blends.

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

/// Spearman rank correlation (ties get their mean rank); `None` where it is undefined (a
/// side that does not vary, or fewer than two points).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let ranks = |v: &[f64]| -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for k in i..=j {
                r[order[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    };
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::{pearson, spearman};

    #[test]
    fn pearson_of_lines_and_of_nothing() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]).unwrap() - 0.99794).abs() < 1e-5);
        assert!((pearson(&[1.0, 2.0], &[3.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 2.0], &[5.0, 5.0]), None);
        assert_eq!(pearson(&[1.0], &[2.0]), None);
    }

    #[test]
    fn spearman_of_monotone_and_reversed() {
        let x = [0.0, 1.0, 2.0, 3.0];
        assert!((spearman(&x, &[1.0, 5.0, 6.0, 9.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[9.0, 5.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // A side that does not vary has no rank order: undefined, not 0.
        assert_eq!(spearman(&x, &[0.5; 4]), None);
        assert_eq!(spearman(&[1.0], &[2.0]), None);
    }
}
