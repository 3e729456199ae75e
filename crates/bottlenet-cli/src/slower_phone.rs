//! `infer --emulate-slower-phone K`: a [`PhoneHalf`] whose every computation takes `K` times as
//! long as it did on this machine — the phone-side counterpart of the shaped up-link in
//! `scripts/netem.sh`. The paper's phone (a Jetson TX2) is several times slower than its server;
//! when phone and server share one host, this puts the run back in that regime, so that
//! Algorithm 1's choice depends on the link and the server's load as it does in the paper.
//!
//! Invariant: the answer and the bytes are the inner phone's, unchanged; only the wall time
//! grows, by sleeping `(K − 1) ×` the measured compute time after each call. A profile that
//! goes with it is the measured mobile profile with every time multiplied by `K`
//! (`scripts/netem.sh --adapt` writes one).

use bottlenet_runtime::{Image, PhoneHalf, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wraps a phone half; each call's compute time is stretched to `factor ×` what it measured.
pub struct SlowerPhone {
    inner: Arc<dyn PhoneHalf>,
    factor: f64,
}

impl SlowerPhone {
    /// `factor` ≥ 1 (checked by the caller: `infer` refuses anything else).
    pub fn new(inner: Arc<dyn PhoneHalf>, factor: f64) -> Self {
        debug_assert!(factor >= 1.0);
        Self { inner, factor }
    }

    /// How long to wait after a call that computed for `elapsed`: `(factor − 1) × elapsed`.
    fn extra_wait(&self, elapsed: Duration) -> Duration {
        elapsed.mul_f64(self.factor - 1.0)
    }

    /// Runs `work`, then waits until `factor ×` its duration has passed.
    fn stretched<T>(&self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        std::thread::sleep(self.extra_wait(started.elapsed()));
        out
    }
}

impl PhoneHalf for SlowerPhone {
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }

    fn splits(&self) -> Vec<String> {
        self.inner.splits()
    }

    fn encode(&self, split: &str, image: &Image) -> Result<Vec<u8>> {
        self.stretched(|| self.inner.encode(split, image))
    }

    fn full(&self, image: &Image) -> Result<Vec<f32>> {
        self.stretched(|| self.inner.full(image))
    }

    fn jpeg_input(&self, image: &Image, quality: u8) -> Result<Vec<u8>> {
        self.stretched(|| self.inner.jpeg_input(image, quality))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phone with fixed answers.
    struct Fixed;

    impl PhoneHalf for Fixed {
        fn model_name(&self) -> &str {
            "fixed"
        }
        fn class_names(&self) -> &[String] {
            &[]
        }
        fn splits(&self) -> Vec<String> {
            vec!["RB1".into()]
        }
        fn encode(&self, _: &str, _: &Image) -> Result<Vec<u8>> {
            Ok(vec![7; 3])
        }
        fn full(&self, _: &Image) -> Result<Vec<f32>> {
            Ok(vec![0.5; 3])
        }
        fn jpeg_input(&self, _: &Image, quality: u8) -> Result<Vec<u8>> {
            Ok(vec![quality])
        }
    }

    #[test]
    fn answers_are_the_inner_phones() {
        let image = Image::new(1, 2, 2, vec![0; 4]).unwrap();
        let phone = SlowerPhone::new(Arc::new(Fixed), 2.0);
        assert_eq!(phone.encode("RB1", &image).unwrap(), vec![7; 3]);
        assert_eq!(phone.full(&image).unwrap(), vec![0.5; 3]);
        assert_eq!(phone.jpeg_input(&image, 42).unwrap(), vec![42]);
        assert_eq!(phone.splits(), vec!["RB1".to_string()]);
    }

    #[test]
    fn the_wait_makes_each_call_factor_times_as_long() {
        let phone = SlowerPhone::new(Arc::new(Fixed), 4.0);
        assert_eq!(
            phone.extra_wait(Duration::from_millis(5)),
            Duration::from_millis(15)
        );
        assert_eq!(
            SlowerPhone::new(Arc::new(Fixed), 1.0).extra_wait(Duration::from_millis(5)),
            Duration::ZERO
        );
    }
}
