//! `select` against a naive reference written straight from Algorithm 1 (paper §2.3, lines
//! 40–46): on random candidates, networks and targets both pick the same candidate and agree on
//! every number. Values are drawn partly from small discrete sets so that exact ties — and the
//! tie-break on bytes, then name — are exercised.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

use bottlenet_partition::{CandidateCosts, CandidateKind, Error, Network, Target, select};
use proptest::prelude::*;

/// Per candidate: (TU, latency, energy, eligible), and the index of the chosen one.
struct Reference {
    rows: Vec<(f64, f64, f64, bool)>,
    chosen: Option<usize>,
}

fn reference(
    costs: &[CandidateCosts],
    network: &Network,
    target: Target,
    pm_w: f64,
    baseline: f64,
    tolerance: f64,
) -> Reference {
    let (mbps, alpha, beta) = (
        network.uplink_mbps,
        network.alpha_mw_per_mbps,
        network.beta_mw,
    );
    let pu_mw = alpha * mbps + beta;
    let mut rows = Vec::new();
    for c in costs {
        // TU = 8·D / NB seconds, NB in bit/s; ×1e3 for ms.
        let tu = 8.0 * c.bytes / (mbps * 1e6) * 1e3;
        let latency = c.tm_ms + tu + c.tc_ms;
        // ms·W = mJ; ms·mW = µJ = mJ/1000.
        let energy = c.tm_ms * pm_w + tu * pu_mw / 1e3;
        let eligible = c.accuracy >= baseline - tolerance - 1e-9;
        rows.push((tu, latency, energy, eligible));
    }
    let mut chosen: Option<usize> = None;
    for (i, &(_, latency, energy, eligible)) in rows.iter().enumerate() {
        if !eligible {
            continue;
        }
        let objective = if target == Target::Latency {
            latency
        } else {
            energy
        };
        let better = match chosen {
            None => true,
            Some(b) => {
                let best = if target == Target::Latency {
                    rows[b].1
                } else {
                    rows[b].2
                };
                objective < best
                    || (objective == best && costs[i].bytes < costs[b].bytes)
                    || (objective == best
                        && costs[i].bytes == costs[b].bytes
                        && costs[i].name < costs[b].name)
            }
        };
        if better {
            chosen = Some(i);
        }
    }
    Reference { rows, chosen }
}

fn time() -> impl Strategy<Value = f64> {
    prop_oneof![0.0..50.0f64, prop::sample::select(vec![0.0, 1.0, 2.0])]
}

fn bytes() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..50_000.0f64,
        prop::sample::select(vec![0.0, 100.0, 200.0])
    ]
}

fn accuracy() -> impl Strategy<Value = f64> {
    prop_oneof![60.0..80.0f64, prop::sample::select(vec![74.0, 76.0])]
}

/// 1–8 candidates with shuffled unique names; the last may be mobile-only.
fn candidates() -> impl Strategy<Value = Vec<CandidateCosts>> {
    (1usize..=8)
        .prop_flat_map(|n| {
            let names = Just((0..n).map(|i| format!("c{i}")).collect::<Vec<_>>()).prop_shuffle();
            (
                names,
                prop::collection::vec((time(), time(), bytes(), accuracy()), n),
                any::<bool>(),
            )
        })
        .prop_map(|(names, values, last_is_mobile)| {
            let n = values.len();
            values
                .into_iter()
                .zip(names)
                .enumerate()
                .map(|(i, ((tm_ms, tc_ms, bytes, accuracy), name))| {
                    if last_is_mobile && i == n - 1 {
                        CandidateCosts {
                            name,
                            kind: CandidateKind::MobileOnly,
                            tm_ms,
                            tc_ms: 0.0,
                            bytes: 0.0,
                            accuracy,
                        }
                    } else {
                        let kind = CandidateKind::Split {
                            index: i as u32 + 1,
                        };
                        CandidateCosts {
                            name,
                            kind,
                            tm_ms,
                            tc_ms,
                            bytes,
                            accuracy,
                        }
                    }
                })
                .collect()
        })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn select_matches_the_naive_reference(
        costs in candidates(),
        mbps in prop_oneof![0.1..100.0f64, Just(1.1), Just(18.88)],
        // Zero power (with PM = 0) makes every energy 0, so the tie-breaks decide.
        alpha in prop_oneof![0.0..1000.0f64, Just(0.0)],
        beta in prop_oneof![0.0..2000.0f64, Just(0.0)],
        latency_target in any::<bool>(),
        pm_w in prop_oneof![0.0..5.0f64, Just(0.0)],
        baseline in 60.0..80.0f64,
        tolerance in prop_oneof![0.0..5.0f64, Just(2.0)],
    ) {
        let target = if latency_target { Target::Latency } else { Target::Energy };
        let network = Network::new(mbps, alpha, beta).unwrap();
        let expected = reference(&costs, &network, target, pm_w, baseline, tolerance);
        let result = select(&costs, &network, target, pm_w, baseline, tolerance);
        let Some(best) = expected.chosen else {
            prop_assert!(matches!(result, Err(Error::NoEligible { .. })), "{result:?}");
            return Ok(());
        };
        let selection = result.unwrap();
        prop_assert_eq!(&selection.chosen().candidate, &costs[best].name, "\n{}", selection.render_table());
        prop_assert_eq!(selection.rows().len(), costs.len());
        prop_assert_eq!(selection.rows().iter().filter(|r| r.chosen).count(), 1);
        for (c, &(tu, latency, energy, eligible)) in costs.iter().zip(&expected.rows) {
            let row = selection.get(&c.name).unwrap();
            prop_assert!(close(row.tu_ms, tu), "{} tu {} vs {}", c.name, row.tu_ms, tu);
            prop_assert!(close(row.latency_ms, latency), "{} latency {} vs {}", c.name, row.latency_ms, latency);
            prop_assert!(close(row.energy_mj, energy), "{} energy {} vs {}", c.name, row.energy_mj, energy);
            prop_assert!(close(row.tm_ms, c.tm_ms) && close(row.tc_ms, c.tc_ms) && close(row.bytes, c.bytes));
            prop_assert_eq!(row.eligible, eligible);
        }
        // Rank order: eligible first, objective never decreasing within each group.
        let rows = selection.rows();
        for pair in rows.windows(2) {
            prop_assert!(pair[0].eligible >= pair[1].eligible);
            if pair[0].eligible == pair[1].eligible {
                prop_assert!(pair[0].objective(target) <= pair[1].objective(target));
            }
        }
    }
}
