//! Unit tests of `plot.rs`.

use super::*;

#[test]
fn categories_map_centres_and_label_by_name() {
    let c = Categories {
        names: vec!["input".into(), "RB1".into(), "RB2".into()],
    };
    // Axis -0.5..2.5 over 0..300 px: category i at 50 + 100·i.
    assert_eq!(c.map(&0.0, (0, 300)), 50);
    assert_eq!(c.map(&2.0, (0, 300)), 250);
    assert_eq!(c.format_ext(&1.0), "RB1");
    assert_eq!(c.format_ext(&3.0), "");
    assert_eq!(c.key_points(3usize), [0.0, 1.0, 2.0]);
    assert_eq!(c.key_points(2usize), [0.0, 2.0]);
}

#[test]
fn compact_labels_and_log_bounds() {
    assert_eq!(compact(3_211_264.0), "3.2M");
    assert_eq!(compact(150_528.0), "150.5k");
    assert_eq!(compact(316.0), "316");
    assert_eq!(compact(1.6), "1.6");
    let axis = LogAxis { range: 1.5..600.0 };
    assert_eq!(
        axis.key_points(100usize),
        [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    );
    assert_eq!(axis.key_points(6usize), [3.0, 10.0, 30.0, 100.0, 300.0]);
    assert_eq!(axis.key_points(3usize), [10.0, 100.0]);
    assert_eq!(axis.key_points(1usize), [10.0]);
    assert_eq!(axis.map(&1.5, (0, 100)), 0);
    assert_eq!(axis.map(&600.0, (0, 100)), 100);
    assert_eq!(axis.map(&30.0, (0, 100)), 50);
    let r = log_bounds([0.0, 2.0, 8.0, f64::NAN], 2.0);
    assert!((r.start - 1.25).abs() < 1e-12 && (r.end - 16.0).abs() < 1e-12);
    assert!(log_bounds([0.0], 2.0).start > 0.0);
}
