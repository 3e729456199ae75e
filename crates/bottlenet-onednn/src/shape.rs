//! The geometry of one 2-D convolution, in PyTorch conventions.

use crate::{Error, Result};

/// One 2-D convolution's geometry.
///
/// Conventions follow PyTorch/burn: `dilation` 1 means none, the weight is
/// `[out_channels, in_channels / groups, kernel[0], kernel[1]]`, and
/// `padding` is `[top, left, bottom, right]` so asymmetric padding can be
/// expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Mini-batch size N.
    pub batch: usize,
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Input height H.
    pub in_height: usize,
    /// Input width W.
    pub in_width: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[height, width]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    /// Dilation `[height, width]`; 1 = none (PyTorch convention).
    pub dilation: [usize; 2],
    /// Groups; `in_channels` and `out_channels` must both divide by it.
    pub groups: usize,
}

impl Conv2dShape {
    /// A square-kernel, symmetric-padding, undilated, ungrouped convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        in_hw: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            batch,
            in_channels,
            out_channels,
            in_height: in_hw[0],
            in_width: in_hw[1],
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 4],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// Checks that the shape describes a convolution with a non-empty
    /// output whose element counts fit in memory indices.
    pub fn validate(&self) -> Result<()> {
        let named = [
            ("batch", self.batch),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("in_height", self.in_height),
            ("in_width", self.in_width),
            ("kernel height", self.kernel[0]),
            ("kernel width", self.kernel[1]),
            ("stride height", self.stride[0]),
            ("stride width", self.stride[1]),
            ("dilation height", self.dilation[0]),
            ("dilation width", self.dilation[1]),
            ("groups", self.groups),
        ];
        for (name, v) in named {
            if v == 0 {
                return Err(Error::Shape(format!("{name} is 0, must be at least 1")));
            }
        }
        if !self.in_channels.is_multiple_of(self.groups) {
            return Err(Error::Shape(format!(
                "in_channels {} is not divisible by groups {}",
                self.in_channels, self.groups
            )));
        }
        if !self.out_channels.is_multiple_of(self.groups) {
            return Err(Error::Shape(format!(
                "out_channels {} is not divisible by groups {}",
                self.out_channels, self.groups
            )));
        }
        for (axis, name) in [(0, "height"), (1, "width")] {
            let input = [self.in_height, self.in_width][axis];
            let padded = input
                .checked_add(self.padding[axis])
                .and_then(|v| v.checked_add(self.padding[axis + 2]))
                .ok_or_else(|| Error::Shape(format!("padded {name} overflows")))?;
            let extent = self.effective_kernel(axis)?;
            if extent > padded {
                return Err(Error::Shape(format!(
                    "dilated kernel {name} {extent} is larger than padded input {name} {padded}"
                )));
            }
        }
        // Every count must fit in usize and in oneDNN's i64 dims.
        for (name, count) in [
            ("input", self.checked_input_len()),
            ("weight", self.checked_weight_len()),
            ("output", self.checked_output_len()),
        ] {
            match count {
                Some(n) if i64::try_from(n).is_ok() => {}
                _ => return Err(Error::Shape(format!("{name} element count overflows"))),
            }
        }
        Ok(())
    }

    /// Output `[height, width]`, or `None` if the shape is invalid.
    pub fn output_hw(&self) -> Option<[usize; 2]> {
        self.validate().ok()?;
        Some(self.output_hw_unchecked())
    }

    /// Input element count `N*C*H*W`.
    pub fn input_len(&self) -> usize {
        self.checked_input_len().unwrap_or(usize::MAX)
    }

    /// Weight element count `O*(C/groups)*KH*KW`.
    pub fn weight_len(&self) -> usize {
        self.checked_weight_len().unwrap_or(usize::MAX)
    }

    /// Output element count `N*O*OH*OW` (0 if the shape is invalid).
    pub fn output_len(&self) -> usize {
        if self.validate().is_err() {
            return 0;
        }
        self.checked_output_len().unwrap_or(usize::MAX)
    }

    /// Bias element count `O`.
    pub fn bias_len(&self) -> usize {
        self.out_channels
    }

    /// Multiply-adds times two of one forward pass (the same count applies
    /// to backward-data and backward-weights); 0 if the shape is invalid.
    pub fn flops(&self) -> f64 {
        if self.validate().is_err() {
            return 0.0;
        }
        let [oh, ow] = self.output_hw_unchecked();
        2.0 * (self.batch * self.out_channels * oh * ow) as f64
            * (self.in_channels / self.groups * self.kernel[0] * self.kernel[1]) as f64
    }

    /// `(k - 1) * d + 1` along `axis` (0 = height, 1 = width).
    fn effective_kernel(&self, axis: usize) -> Result<usize> {
        (self.kernel[axis] - 1)
            .checked_mul(self.dilation[axis])
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| Error::Shape("dilated kernel extent overflows".into()))
    }

    /// Output size; only call after `validate` succeeded up to the extent
    /// checks (no underflow possible then).
    pub(crate) fn output_hw_unchecked(&self) -> [usize; 2] {
        let out = |axis: usize, input: usize| {
            let padded = input + self.padding[axis] + self.padding[axis + 2];
            let extent = (self.kernel[axis] - 1) * self.dilation[axis] + 1;
            (padded - extent) / self.stride[axis] + 1
        };
        [out(0, self.in_height), out(1, self.in_width)]
    }

    fn checked_input_len(&self) -> Option<usize> {
        self.batch
            .checked_mul(self.in_channels)?
            .checked_mul(self.in_height)?
            .checked_mul(self.in_width)
    }

    fn checked_weight_len(&self) -> Option<usize> {
        self.out_channels
            .checked_mul(self.in_channels.checked_div(self.groups)?)?
            .checked_mul(self.kernel[0])?
            .checked_mul(self.kernel[1])
    }

    fn checked_output_len(&self) -> Option<usize> {
        let [oh, ow] = self.output_hw_unchecked();
        self.batch
            .checked_mul(self.out_channels)?
            .checked_mul(oh)?
            .checked_mul(ow)
    }

    /// Checks one buffer's length against the expected count.
    #[cfg_attr(not(onednn_linked), allow(dead_code))]
    pub(crate) fn check_len(what: &str, got: usize, expected: usize) -> Result<()> {
        if got == expected {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "{what} has {got} elements, expected {expected}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Conv2dShape {
        Conv2dShape::new(2, 4, 8, [10, 12], 3, 1, 1)
    }

    fn refusal(shape: Conv2dShape) -> String {
        match shape.validate() {
            Err(Error::Shape(msg)) => {
                assert!(!msg.contains('\n'));
                msg
            }
            other => panic!("expected a Shape error, got {other:?}"),
        }
    }

    #[test]
    fn counts_and_output() {
        let s = base();
        s.validate().expect("valid");
        assert_eq!(s.output_hw(), Some([10, 12]));
        assert_eq!(s.input_len(), 2 * 4 * 10 * 12);
        assert_eq!(s.weight_len(), 8 * 4 * 9);
        assert_eq!(s.output_len(), 2 * 8 * 10 * 12);
        assert_eq!(s.bias_len(), 8);
        assert_eq!(s.flops(), 2.0 * (2 * 8 * 120) as f64 * 36.0);
    }

    #[test]
    fn strided_dilated_grouped_asymmetric() {
        let s = Conv2dShape {
            stride: [2, 3],
            padding: [1, 0, 2, 3],
            dilation: [2, 1],
            groups: 2,
            ..base()
        };
        s.validate().expect("valid");
        // height: (10 + 3 - 5) / 2 + 1 = 5; width: (12 + 3 - 3) / 3 + 1 = 5
        assert_eq!(s.output_hw(), Some([5, 5]));
        assert_eq!(s.weight_len(), 8 * 2 * 9);
    }

    #[test]
    fn pytorch_formula_examples() {
        // 28x28, 3x3 s2 p1 -> 14x14; 1x1 s2 p0 -> 14x14; 7x7 s2 p3 on 224 -> 112
        assert_eq!(Conv2dShape::new(1, 16, 32, [28, 28], 3, 2, 1).output_hw(), Some([14, 14]));
        assert_eq!(Conv2dShape::new(1, 16, 32, [28, 28], 1, 2, 0).output_hw(), Some([14, 14]));
        assert_eq!(Conv2dShape::new(1, 3, 64, [224, 224], 7, 2, 3).output_hw(), Some([112, 112]));
    }

    #[test]
    fn refuses_zeros() {
        assert!(refusal(Conv2dShape { batch: 0, ..base() }).contains("batch is 0"));
        assert!(refusal(Conv2dShape { in_channels: 0, ..base() }).contains("in_channels is 0"));
        assert!(refusal(Conv2dShape { stride: [1, 0], ..base() }).contains("stride width is 0"));
        assert!(refusal(Conv2dShape { dilation: [0, 1], ..base() }).contains("dilation height is 0"));
        assert!(refusal(Conv2dShape { groups: 0, ..base() }).contains("groups is 0"));
        assert!(refusal(Conv2dShape { kernel: [0, 3], ..base() }).contains("kernel height is 0"));
    }

    #[test]
    fn refuses_bad_groups() {
        assert!(refusal(Conv2dShape { groups: 3, ..base() }).contains("in_channels 4 is not divisible by groups 3"));
        assert!(refusal(Conv2dShape { in_channels: 6, out_channels: 8, groups: 3, ..base() })
            .contains("out_channels 8 is not divisible by groups 3"));
    }

    #[test]
    fn refuses_kernel_larger_than_input() {
        let s = Conv2dShape { kernel: [3, 3], padding: [0; 4], in_height: 2, ..base() };
        assert!(refusal(s).contains("kernel height 3 is larger than padded input height 2"));
        let s = Conv2dShape { dilation: [1, 7], padding: [0; 4], ..base() };
        assert!(refusal(s).contains("kernel width 15 is larger than padded input width 12"));
        assert_eq!(s.output_hw(), None);
        assert_eq!(s.output_len(), 0);
    }

    #[test]
    fn refuses_overflow() {
        let s = Conv2dShape { batch: usize::MAX / 2, ..base() };
        assert!(refusal(s).contains("overflows"));
        let s = Conv2dShape { dilation: [usize::MAX, 1], ..base() };
        assert!(refusal(s).contains("overflows"));
    }

    #[test]
    fn check_len_message() {
        assert!(Conv2dShape::check_len("input", 4, 4).is_ok());
        let e = Conv2dShape::check_len("input", 3, 4).expect_err("mismatch");
        assert_eq!(e.to_string(), "bad convolution shape: input has 3 elements, expected 4");
    }
}
